# A coding agent from PyPI, for `sandbox run <agent>`. `make images` builds one
# image from this file for each agent of agents.txt whose base is python, its
# fields as the build arguments below. sandbox runs the image as your uid (any
# uid, not only 1000), with a read-only root, HOME=/home/sandbox on a tmpfs and
# the project at /work: nothing here may need to write anywhere else at run time.
#
# The base is an argument: the published Python image by default (3.12:
# aider-chat supports 3.10 to 3.12), or one made here without a registry
# (`make images BASES=local`, images/bases/), Debian's Python 3.11.
ARG BASE=python:3.12.16-slim-bookworm
FROM ${BASE}

# What agents reach for: git, ripgrep, ps, and certificates for their APIs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git procps ripgrep \
 && rm -rf /var/lib/apt/lists/*

# A user for a plain `docker run`; sandbox runs the image as you instead.
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/agent \
      --shell /bin/bash agent

# No pip cache in the image, no pip version check, and the agent's own
# switches against self-updates and questions that would write on every run: a
# new image is the update. They are its image_env, a name and a value each, as
# ENV takes no list from one argument. An unused one sets PIP_NO_CACHE_DIR=1
# once more. The agent's virtual environment's bin/ is on PATH.
ARG ENV1_NAME=PIP_NO_CACHE_DIR
ARG ENV1_VALUE=1
ARG ENV2_NAME=PIP_NO_CACHE_DIR
ARG ENV2_VALUE=1
ARG ENV3_NAME=PIP_NO_CACHE_DIR
ARG ENV3_VALUE=1
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ${ENV1_NAME}=${ENV1_VALUE} \
    ${ENV2_NAME}=${ENV2_VALUE} \
    ${ENV3_NAME}=${ENV3_VALUE} \
    PATH=/opt/agent/bin:$PATH

# An agent that reads no variable for its updates reads a system-wide file
# (image_file), which a user's own settings still override. Its text is one
# line of the table: a `\n` in it starts a new line of the file (printf's %b).
ARG IMAGE_FILE=
ARG IMAGE_FILE_TEXT=
RUN if [ -n "$IMAGE_FILE" ]; then \
      mkdir -p "$(dirname "$IMAGE_FILE")" \
      && printf '%b\n' "$IMAGE_FILE_TEXT" > "$IMAGE_FILE"; \
    fi

# The agent at the exact version agents.txt names, in a virtual environment of
# its own; without the arguments the build stops here rather than install
# whatever is latest. pip compiles the bytecode now: /opt is read-only at run
# time, so Python is told not to try then. The last command fails the build if
# the binary is not on PATH.
ARG PACKAGE
ARG VERSION
ARG BINARY
RUN : "${PACKAGE:?}" "${VERSION:?}" "${BINARY:?}" \
 && python -m venv /opt/agent \
 && /opt/agent/bin/pip install ${PACKAGE}==${VERSION} \
 && command -v "$BINARY"

# CMD takes no build argument, so the shell finds the binary by name.
ENV PYTHONDONTWRITEBYTECODE=1 \
    AGENT_BINARY=${BINARY}
USER 1000
WORKDIR /work
CMD ["/bin/sh", "-c", "exec \"$AGENT_BINARY\""]
