#!/usr/bin/env bash
# The system packages the tests need beyond Python 3.11+, Java 17 and Node 20: Debian's
# Chromium (browser end-to-end and dashboard tests, driven by Python playwright, never a
# browser download) and libfaketime (package faketime: shifts the browser's clock).
# Installs only what is missing, with apt-get as root; elsewhere it says what to install.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
# DynamoDB Local needs Java 17+; make and npm for the rest.
java_major=$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p' || true)
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jre-headless)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages missing: ${missing[*]} (install them; the browser tests skip without" \
       "chromium and faketime)" >&2
  exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
