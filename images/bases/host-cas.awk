# The host's own certificate authorities, for `make bases` (images/build.sh):
# what a TLS-inspecting proxy (a corporate one, or these machines') signs
# with, which apt, npm, pip and git in the images must trust as the host does.
#
#   awk -v dir=ROOT/usr/local/share/ca-certificates/host -f host-cas.awk \
#       ROOT/etc/ssl/certs/ca-certificates.crt [DISTRIBUTION.pem] HOST-BUNDLE
#
# Writes each certificate of HOST-BUNDLE (the last file) that none of the
# files before it has to dir/host-N.crt, one a file: update-ca-certificates
# then adds them to the root's bundle, and adds them again whenever the
# ca-certificates package rebuilds it. The files before are the root's bundle
# and the authorities the host's distribution ships: a host whose
# ca-certificates is older or newer than the root's would otherwise hand the
# root the authorities Mozilla added since, or worse, those it removed.
# Prints how many it wrote.

/-----BEGIN CERTIFICATE-----/ {
    inside = 1
    pem = ""
    body = ""
}

inside {
    pem = pem $0 "\n"
}

inside && /-----END CERTIFICATE-----/ {
    inside = 0
    if (FILENAME != ARGV[ARGC - 1]) {
        known[body] = 1
    } else if (!(body in known)) {
        known[body] = 1
        file = dir "/host-" ++written ".crt"
        printf "%s", pem > file
        close(file)
    }
    next
}

# The base64 alone, so that line endings and spacing do not matter.
inside && !/-----BEGIN/ {
    line = $0
    gsub(/[ \t\r]/, "", line)
    body = body line
}

END {
    print written + 0 " of the host's certificate authorities added"
}
