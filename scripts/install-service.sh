#!/usr/bin/env bash
# Installs minisipserver as a systemd service, or removes it. Run as root.
#
#   scripts/install-service.sh [--binary FILE] [--prefix DIR] [--with-mariadb] [--no-start]
#   scripts/install-service.sh --uninstall [--prefix DIR] [--purge]
#   scripts/install-service.sh --render-unit DIR [--prefix DIR] [--with-mariadb]
#
# Install: copies the executable (default dist/minisipserver, from `npm run build:binary`) to
# PREFIX/bin (default /usr/local), creates the system user `minisipserver`, /etc/minisipserver/
# with a default configuration (an existing one is kept), /var/lib/minisipserver/ for data, and
# the unit minisipserver.service; then enables and starts it.
# --with-mariadb adds a drop-in that orders the service after mariadb.service and requires it.
# --uninstall stops and removes the service and the executable; configuration and data stay
# unless --purge is given. --render-unit only writes the unit files into DIR (nothing else).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
unit_template="$here/packaging/systemd/minisipserver.service"
mariadb_dropin="$here/packaging/systemd/mariadb.conf"
default_config="$here/packaging/minisipserver.yaml"

service=minisipserver
user=minisipserver
config_dir=/etc/minisipserver
data_dir=/var/lib/minisipserver
unit_dir=/etc/systemd/system

binary="$here/dist/minisipserver"
prefix=/usr/local
action=install
with_mariadb=no
start=yes
purge=no
render_dir=

die() {
  echo "install-service: $*" >&2
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
    --with-mariadb) with_mariadb=yes; shift ;;
    --no-start) start=no; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=yes; shift ;;
    --render-unit) action=render; render_dir="${2:?--render-unit needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

installed_binary="$prefix/bin/minisipserver"

# Writes the unit (ExecStart pointing at the installed executable) and, if asked, the drop-in.
render_unit() {
  local dir="$1"
  mkdir -p "$dir"
  sed "s|/usr/bin/minisipserver|$installed_binary|g" "$unit_template" > "$dir/$service.service"
  if [[ "$with_mariadb" == yes ]]; then
    mkdir -p "$dir/$service.service.d"
    cp "$mariadb_dropin" "$dir/$service.service.d/mariadb.conf"
  fi
}

systemd_running() {
  [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1
}

install_service() {
  [[ -x "$binary" ]] || die "$binary is not an executable: run \`npm run build:binary\` first or name one with --binary"
  install -D -m 0755 "$binary" "$installed_binary"

  if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin \
      --comment "minisipserver SIP server" "$user"
  fi
  install -d -m 0750 -o root -g "$user" "$config_dir"
  if [[ ! -e "$config_dir/minisipserver.yaml" ]]; then
    install -m 0640 -o root -g "$user" "$default_config" "$config_dir/minisipserver.yaml"
  fi
  install -d -m 0750 -o "$user" -g "$user" "$data_dir"

  render_unit "$unit_dir"
  echo "installed $installed_binary, $unit_dir/$service.service, config in $config_dir, data in $data_dir"
  if systemd_running; then
    systemctl daemon-reload
    if [[ "$start" == yes ]]; then
      systemctl enable --now "$service.service"
      echo "started: systemctl status $service; logs: journalctl -u $service -f"
    else
      systemctl enable "$service.service"
    fi
  else
    echo "systemd is not running here: start it later with systemctl enable --now $service"
  fi
}

uninstall_service() {
  if systemd_running; then
    systemctl disable --now "$service.service" 2>/dev/null || true
  fi
  rm -f "$unit_dir/$service.service" "$unit_dir/$service.service.d/mariadb.conf"
  rmdir "$unit_dir/$service.service.d" 2>/dev/null || true
  if systemd_running; then systemctl daemon-reload; fi
  rm -f "$installed_binary"
  if [[ "$purge" == yes ]]; then
    rm -rf "$config_dir" "$data_dir" "/var/cache/$service"
    if getent passwd "$user" >/dev/null; then userdel "$user"; fi
    echo "removed the service, $installed_binary, $config_dir, $data_dir and the user $user"
  else
    echo "removed the service and $installed_binary; kept $config_dir and $data_dir (--purge removes them)"
  fi
}

case "$action" in
  render) render_unit "$render_dir" ;;
  install) [[ $EUID -eq 0 ]] || die "run as root (it creates a user and a systemd unit)"; install_service ;;
  uninstall) [[ $EUID -eq 0 ]] || die "run as root"; uninstall_service ;;
esac
