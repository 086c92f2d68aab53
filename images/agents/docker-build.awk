# Reads the agent table (agents.txt, beside this file) for the Makefile.
#
#   awk -f docker-build.awk agents.txt
#       prints every agent's name, one a line
#   awk -v agent=claude -v docker=docker -f docker-build.awk agents.txt
#       prints the `docker build` that makes claude's image, every argument
#       quoted for sh; exits 1 when the table has no such agent
#   awk -v agent=claude -v docker=docker -v bases='node=TAG python=TAG' ...
#       the same, built on the base image TAG its base names (BASE, which
#       otherwise is the Dockerfile's own: the published one)
#   awk -v agent=claude -v show=base -f docker-build.awk agents.txt
#       prints one field of claude's stanza
#
# The table's rules are src/config/agents/table.rs's: a stanza per agent,
# `field: value` lines, an empty line between stanzas, `#` comments. The build
# arguments are the ones images/agents/*.Dockerfile take; tests/images.rs
# checks that this script and the Dockerfiles agree.

# 's' as one sh word: in single quotes, each ' written '\''.
function quote(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        out = out (c == "'" ? "'\\''" : c)
    }
    return "'" out "'"
}

function trim(s) {
    sub(/^[ \t]+/, "", s)
    sub(/[ \t\r]+$/, "", s)
    return s
}

function build_arg(name, value) {
    return " --build-arg " quote(name "=" value)
}

# The stanza just read, when it is the agent asked for.
function finish(    dir, command, n, pairs, i, eq) {
    if (!("name" in field))
        return
    if (agent == "") {
        print field["name"]
        return
    }
    if (field["name"] != agent)
        return
    found = 1
    if (show != "") {
        print field[show]
        return
    }
    dir = FILENAME
    if (!sub(/\/[^\/]*$/, "", dir))
        dir = "."
    command = docker " build -f " quote(dir "/" field["base"] ".Dockerfile")
    if (bases != "") {
        if (!((field["base"]) in base_image)) {
            print "no local base `" field["base"] "` for " agent " (bases: " bases ")" > "/dev/stderr"
            unbuildable = 1
            exit 1
        }
        command = command build_arg("BASE", base_image[field["base"]])
    }
    command = command build_arg("PACKAGE", field["package"])
    command = command build_arg("VERSION", field["version"])
    command = command build_arg("BINARY", field["binary"])
    n = split(field["image_env"], pairs, " ")
    for (i = 1; i <= n; i++) {
        eq = index(pairs[i], "=")
        command = command build_arg("ENV" i "_NAME", substr(pairs[i], 1, eq - 1))
        command = command build_arg("ENV" i "_VALUE", substr(pairs[i], eq + 1))
    }
    if (field["image_file"] != "") {
        command = command build_arg("IMAGE_FILE", field["image_file"])
        command = command build_arg("IMAGE_FILE_TEXT", field["image_file_text"])
    }
    print command " -t " quote(field["image"]) " " quote(dir)
}

# The images `-v bases` names, by base.
BEGIN {
    n = split(bases, pairs, " ")
    for (i = 1; i <= n; i++) {
        eq = index(pairs[i], "=")
        base_image[substr(pairs[i], 1, eq - 1)] = substr(pairs[i], eq + 1)
    }
}

/^[ \t]*#/ { next }

/^[ \t\r]*$/ {
    finish()
    split("", field)
    next
}

{
    colon = index($0, ":")
    field[trim(substr($0, 1, colon - 1))] = trim(substr($0, colon + 1))
}

END {
    if (unbuildable)
        exit 1
    finish()
    if (agent != "" && !found) {
        print "no agent `" agent "` in " FILENAME > "/dev/stderr"
        exit 1
    }
}
