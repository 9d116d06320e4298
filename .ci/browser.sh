#!/usr/bin/env bash
# A headless browser for the report's rendering test (tests/Cli.Tests/ReportCommandTests.cs): prints nothing and
# succeeds when chromium (or chromium-headless-shell) is on PATH, else installs Debian's chromium with apt-get (root
# only); on failure says why on stderr and exits 1 (.ci/run then has the test skipped, with that reason).
set -uo pipefail
die() { echo "$*" >&2; exit 1; }
have() { command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1; }
have && exit 0
[ "$(id -u)" -eq 0 ] || die "no chromium found and not root: install Debian's chromium package"
command -v apt-get >/dev/null || die "no chromium found and no apt-get to install it"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium >&2 || { apt-get update -qq >&2 && apt-get install -y -qq chromium >&2; } || die "apt-get install chromium failed"
have || die "chromium installed but not on PATH"
