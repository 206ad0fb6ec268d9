# shellcheck shell=bash
# jemalloc_path: the libjemalloc.so.2 the node image preloads, or "" if it is
# not installed (bench/RESULTS.md, F13). Sourced by scripts/run.sh and the
# bench/ scripts. awk reads ldconfig's output to the end: a reader that quits
# early kills ldconfig with SIGPIPE, which pipefail turns into a failed run.
jemalloc_path() { ldconfig -p | awk '!p && /libjemalloc\.so\.2 /{p = $NF} END {print p}'; }
