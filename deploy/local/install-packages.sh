#!/usr/bin/env bash
# Install the Debian packages the local stack needs, if any command is missing.
#
# Debian starts (and enables) a package's service when it installs it: redis-server,
# prometheus and prometheus-alertmanager would then hold the ports the project's own stack
# uses, now and after every boot. Those services are stopped and disabled, but only the ones
# whose package this run installed: a Redis or Prometheus the machine already had is left as
# it was.
#
# Usage: install-packages.sh PACKAGE...
# Environment: SUDO (prefix for root commands, may be empty), PYTHON (default python3),
# SYSTEMD_RUN_DIR (default /run/systemd/system: present when systemd runs).
set -euo pipefail

SERVICE_PACKAGES=(redis-server prometheus prometheus-alertmanager)
COMMANDS=(java mvn redis-server prometheus promtool prometheus-alertmanager docker-compose chromium)

missing=""
for c in "${COMMANDS[@]}"; do
  command -v "$c" >/dev/null || missing="$missing $c"
done
"${PYTHON:-python3}" -m venv --help >/dev/null 2>&1 || missing="$missing python3-venv"
[ -z "$missing" ] && exit 0

installed_before() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
fresh=()
for p in "${SERVICE_PACKAGES[@]}"; do
  installed_before "$p" || fresh+=("$p")
done

echo "installing Debian packages (missing:$missing)"
${SUDO:-} apt-get update -q
${SUDO:-} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
if [ "${#fresh[@]}" -gt 0 ] && [ -d "${SYSTEMD_RUN_DIR:-/run/systemd/system}" ]; then
  echo "stopping and disabling the services these packages started: ${fresh[*]}"
  ${SUDO:-} systemctl disable --now "${fresh[@]}" 2>/dev/null || true
fi
