# Flatten a JSON document into one "path<TAB>value" line per scalar, for busybox sh.
# Object keys join with ".", array items are numbered from 0:
#   {"uuid": "u", "keys": [{"data": "ssh-ed25519 AAA"}]}  ->  uuid<TAB>u, keys.0.data<TAB>ssh-...
# Escapes are decoded; newlines, tabs and non-ASCII \u escapes inside strings become
# spaces or "?" so that every value stays on one line. Malformed input ends the walk early.
{ text = text $0 "\n" }

END {
    s = text; len = length(s); pos = 1; steps = 0
    value("")
}

function skip() {
    while (pos <= len && index(" \t\r\n", substr(s, pos, 1)) > 0) pos++
}

function value(path,    c) {
    if (++steps > 100000) { pos = len + 1; return }
    skip(); c = substr(s, pos, 1)
    if (c == "{") object(path)
    else if (c == "[") array(path)
    else if (c == "\"") emit(path, str())
    else literal(path)
}

function object(path,    key, c) {
    pos++; skip()
    if (substr(s, pos, 1) == "}") { pos++; return }
    while (pos <= len) {
        skip(); key = str(); skip()
        if (substr(s, pos, 1) != ":") { pos = len + 1; return }
        pos++
        value(path == "" ? key : path "." key)
        skip(); c = substr(s, pos, 1); pos++
        if (c != ",") return
    }
}

function array(path,    i, c) {
    pos++; skip()
    if (substr(s, pos, 1) == "]") { pos++; return }
    for (i = 0; pos <= len; i++) {
        value(path == "" ? i : path "." i)
        skip(); c = substr(s, pos, 1); pos++
        if (c != ",") return
    }
}

function str(    out, c, e, code) {
    if (substr(s, pos, 1) != "\"") { pos = len + 1; return "" }
    pos++; out = ""
    while (pos <= len) {
        c = substr(s, pos, 1)
        if (c == "\"") { pos++; return out }
        if (c != "\\") {
            # Copy the run of ordinary characters up to the next quote or backslash at once.
            if (match(substr(s, pos), /[\\"]/)) { out = out substr(s, pos, RSTART - 1); pos += RSTART - 1 }
            else { out = out substr(s, pos); pos = len + 1 }
            continue
        }
        e = substr(s, pos + 1, 1); pos += 2
        if (e == "n" || e == "r" || e == "t") out = out " "
        else if (e == "b" || e == "f") out = out ""
        else if (e == "u") {
            code = hex(substr(s, pos, 4)); pos += 4
            out = out ((code >= 32 && code < 127) ? sprintf("%c", code) : "?")
        }
        else out = out e
    }
    return out
}

function hex(h,    i, n, d) {
    n = 0; h = tolower(h)
    for (i = 1; i <= length(h); i++) {
        d = index("0123456789abcdef", substr(h, i, 1))
        if (d == 0) return -1
        n = n * 16 + d - 1
    }
    return n
}

function literal(path) {
    if (match(substr(s, pos), /^(-?[0-9.eE+-]+|true|false|null)/)) {
        emit(path, substr(s, pos, RLENGTH)); pos += RLENGTH
    } else pos = len + 1
}

function emit(path, v) {
    print path "\t" v
}
