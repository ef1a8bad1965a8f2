#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages tern needs to build and test, and only
# those that are missing (a machine that has them all is left untouched, no network).
# Postfix is installed only for its test tools (smtp-sink, smtp-source), preseeded
# with "No configuration" and with services kept from starting: no daemon on port 25.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config       # compiler, make
	libssl-dev                       # TLS, hashes (OpenSSL 3)
	libcrypt-dev                     # crypt_r password hashes
	libc-ares-dev                    # asynchronous DNS (relay)
	libcmocka-dev                    # unit tests
	python3 python3-pytest           # end-to-end tests
	python3-aiosmtpd                 # a real SMTP server to relay to in tests
	swaks libnet-ssleay-perl          # real SMTP client in tests (and its TLS)
	dovecot-imapd                    # real IMAP server reading our Maildirs in tests
	dnsmasq-base                     # real DNS server on loopback (MX tests)
	openssl tmux                     # test certificates; a real terminal for tern chat
)
OPTIONAL=(clang                      # fuzzing with libFuzzer; the build does not need it
	postfix)                     # smtp-sink: a server no one here wrote, for client interop tests

is_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' ok installed$'
}

missing=()
for p in "${PACKAGES[@]}"; do
	is_installed "$p" || missing+=("$p")
done
optional_missing=()
for p in "${OPTIONAL[@]}"; do
	is_installed "$p" || optional_missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ] && [ ${#optional_missing[@]} -eq 0 ]; then
	echo "deps: all packages present"
	exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]} ${optional_missing[*]}" >&2; exit 1; }
	SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

echo "deps: installing: ${missing[*]} ${optional_missing[*]}"
# Package scripts (dovecot) try to start their service. Tests start their own
# dovecot, so a system one is not wanted; and in a container without an init system
# the start may fail. While installing, a temporary policy-rc.d (exit 101 = "action
# forbidden", which invoke-rc.d treats as success) stops services from starting;
# an existing policy-rc.d is left as it is.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
	"${SUDO[@]}" chmod 755 "$POLICY"
	trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi
"${SUDO[@]}" apt-get update -q
# Should a service start still fail, the install is judged by whether the packages
# ended up installed, not by apt's exit code alone.
if [ ${#missing[@]} -gt 0 ]; then
	if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
		echo "deps: apt-get reported an error; finishing package configuration" >&2
		"${SUDO[@]}" dpkg --configure -a || true
	fi
	still=()
	for p in "${missing[@]}"; do
		is_installed "$p" || still+=("$p")
	done
	if [ ${#still[@]} -gt 0 ]; then
		echo "deps: failed to install: ${still[*]}" >&2
		exit 1
	fi
fi
if [ ${#optional_missing[@]} -gt 0 ]; then
	echo "postfix postfix/main_mailer_type select No configuration" |
		"${SUDO[@]}" debconf-set-selections
	"${SUDO[@]}" apt-get install -y --no-install-recommends "${optional_missing[@]}" ||
		echo "deps: optional packages not installed: ${optional_missing[*]} (continuing)" >&2
fi
echo "deps: done"
