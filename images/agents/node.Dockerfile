# A coding agent from npm, for `sandbox run <agent>`. `make images` builds one
# image from this file for each agent of agents.txt whose base is node, its
# fields as the build arguments below. sandbox runs the image as your uid (any
# uid, not only 1000), with a read-only root, HOME=/home/sandbox on a tmpfs and
# the project at /work: nothing here may need to write anywhere else at run time.
#
# The base is an argument: the published Node image by default, or one made
# here without a registry (`make images BASES=local`, images/bases/), which
# has the same Node and npm, and the same `node` user.
ARG BASE=node:22.23.3-bookworm-slim
FROM ${BASE}

# What agents reach for: git, ripgrep, ps (Codex's interactive mode runs it),
# and certificates for their APIs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git procps ripgrep \
 && rm -rf /var/lib/apt/lists/*

# uid 1000 is the base image's `node`: renamed `agent`, for a plain
# `docker run`. sandbox runs the image as you instead.
RUN groupmod --new-name agent node \
 && usermod --login agent --home /home/agent --move-home node

# No self-updates or update notices: the root is read-only at run time, and a
# new image is the update. npm's notifier is off for every agent; the agent's
# own switches are its image_env, a name and a value each, as ENV takes no
# list from one argument. An unused one sets NO_UPDATE_NOTIFIER=1 once more.
ARG ENV1_NAME=NO_UPDATE_NOTIFIER
ARG ENV1_VALUE=1
ARG ENV2_NAME=NO_UPDATE_NOTIFIER
ARG ENV2_VALUE=1
ARG ENV3_NAME=NO_UPDATE_NOTIFIER
ARG ENV3_VALUE=1
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NO_UPDATE_NOTIFIER=1 \
    ${ENV1_NAME}=${ENV1_VALUE} \
    ${ENV2_NAME}=${ENV2_VALUE} \
    ${ENV3_NAME}=${ENV3_VALUE}

# An agent that reads no variable for its updates reads a system-wide file
# (image_file), which a user's own settings still override. Its text is one
# line of the table: a `\n` in it starts a new line of the file (printf's %b).
ARG IMAGE_FILE=
ARG IMAGE_FILE_TEXT=
RUN if [ -n "$IMAGE_FILE" ]; then \
      mkdir -p "$(dirname "$IMAGE_FILE")" \
      && printf '%b\n' "$IMAGE_FILE_TEXT" > "$IMAGE_FILE"; \
    fi

# The agent at the exact version agents.txt names; without the arguments the
# build stops here rather than install whatever is latest. Install scripts run
# and optional dependencies stay (--omit=dev only): that is how Claude Code,
# OpenCode and Kilo Code put this platform's native binary in place, and how
# Codex's binary and Gemini CLI's node-pty arrive. The last command fails the
# build if the binary is not on PATH.
ARG PACKAGE
ARG VERSION
ARG BINARY
RUN : "${PACKAGE:?}" "${VERSION:?}" "${BINARY:?}" \
 && npm install --global --omit=dev --no-audit --no-fund ${PACKAGE}@${VERSION} \
 && npm cache clean --force \
 && command -v "$BINARY"

# CMD takes no build argument, so the shell finds the binary by name. Behind
# sandbox's allow-list Node's fetch uses the proxy (NODE_USE_ENV_PROXY), and
# Node 22 warns on every start that this is experimental: not the agent's
# output, and nothing its user can act on.
ENV AGENT_BINARY=${BINARY} \
    NODE_OPTIONS=--disable-warning=UNDICI-EHPA
USER 1000
WORKDIR /work
CMD ["/bin/sh", "-c", "exec \"$AGENT_BINARY\""]
