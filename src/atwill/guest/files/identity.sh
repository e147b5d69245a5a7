# Reading an OpenStack meta_data.json with busybox tools; sourced by rcS (and by tests).
JSONFLAT=${JSONFLAT:-/usr/lib/atwill/jsonflat.awk}

# meta_flatten JSON: "path<TAB>value" lines (see jsonflat.awk).
meta_flatten() {
    awk -f "$JSONFLAT" "$1"
}

# meta_field FLAT PATH: the value at PATH ("uuid", "meta.role"), empty when absent.
meta_field() {
    awk -v k="$2" 'BEGIN { FS = "\t" } $1 == k { print substr($0, length(k) + 2); exit }' "$1"
}

# meta_keys FLAT: the public keys from public_keys{} and keys[].data, once each.
meta_keys() {
    awk 'BEGIN { FS = "\t" }
        $1 ~ /^public_keys\./ || $1 ~ /^keys\.[0-9]+\.data$/ {
            v = substr($0, length($1) + 2)
            sub(/^ +/, "", v); sub(/ +$/, "", v)
            if (v != "" && !(v in seen)) { seen[v] = 1; print v }
        }' "$1"
}

# safe_hostname NAME: letters, digits, dots and hyphens only, at most 63 characters.
safe_hostname() {
    printf '%s' "$1" | tr -cd 'A-Za-z0-9.-' | cut -c1-63
}

# safe_uuid UUID: hex digits and hyphens only.
safe_uuid() {
    printf '%s' "$1" | tr -cd 'A-Fa-f0-9-' | cut -c1-36
}
