# The Python base made here, for machines that reach no container registry
# (`make bases`, `make images BASES=local`): what
# images/agents/python.Dockerfile takes of the published
# python:3.12.16-slim-bookworm, on the Debian root that images/build.sh
# bootstraps (which trusts the host's certificate authorities). That is
# `python` on PATH, with venv and the pip it brings.
#
# Debian bookworm's Python is 3.11, which aider-chat supports (3.10 to 3.12);
# the build fails if Debian's is not the version the tag says.
ARG DEBIAN=sandbox-agents/base-debian:bookworm
FROM ${DEBIAN}
ARG PYTHON_VERSION=3.11.2
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \
 && rm -rf /var/lib/apt/lists/* \
 && found="$(python --version)" \
 && { [ "$found" = "Python ${PYTHON_VERSION}" ] \
      || { echo "Debian's Python is now ${found#Python }, not ${PYTHON_VERSION}: update PYTHON_VERSION and the base's tag" >&2; exit 1; }; }
# As the published image sets it: text is UTF-8 whatever the locale.
ENV LANG=C.UTF-8
CMD ["python3"]
