#!/bin/sh
# scripts/image-root.sh DIR BINARY: lays out the root filesystem of the
# FROM-scratch image in DIR (make image): the gregor binary on PATH, a
# POSIX shell with coreutils (busybox-static) and bash (bash-static), both
# static builds from Debian's packages, Kafka's launcher path
# /etc/kafka/docker/run, the entrypoint, /tmp and /data. The packages are
# fetched with apt-get download (no installation on this machine) and
# cached in bin/debs; apt's package lists are updated when they lack them.
set -eu
root=$1
binary=$2
debs=bin/debs
mkdir -p "$debs"

fetch() { # fetch PACKAGE: its .deb in $debs
	if ls "$debs/$1"_*.deb >/dev/null 2>&1; then
		return
	fi
	if ! (cd "$debs" && apt-get download "$1" >/dev/null 2>&1); then
		SUDO=""
		[ "$(id -u)" = 0 ] || SUDO=sudo
		echo "updating apt's package lists to fetch $1"
		$SUDO apt-get update -qq
		(cd "$debs" && apt-get download "$1")
	fi
}
fetch busybox-static
fetch bash-static

rm -rf "$root"
mkdir -p "$root/bin" "$root/usr/bin" "$root/usr/local/bin" "$root/etc/kafka/docker" "$root/data" "$root/tmp" "$root/x"
dpkg-deb -x "$(ls "$debs"/busybox-static_*.deb | head -n 1)" "$root/x"
dpkg-deb -x "$(ls "$debs"/bash-static_*.deb | head -n 1)" "$root/x"
cp "$root/x/bin/busybox" "$root/bin/busybox"
cp "$root/x/bin/bash-static" "$root/bin/bash"
rm -rf "$root/x"
# One link per busybox applet (sh, ls, cat, sleep, ...), bash excepted.
for applet in $("$root/bin/busybox" --list); do
	case "$applet" in
	busybox | bash) ;;
	*) ln -sf busybox "$root/bin/$applet" ;;
	esac
done
cp "$binary" "$root/usr/bin/gregor"
ln -s usr/bin/gregor "$root/gregor" # the path of the images before this one
cp docker/run "$root/etc/kafka/docker/run"
cp docker/entrypoint.sh "$root/usr/local/bin/docker-entrypoint.sh"
chmod 755 "$root/usr/bin/gregor" "$root/bin/bash" "$root/bin/busybox" "$root/etc/kafka/docker/run" "$root/usr/local/bin/docker-entrypoint.sh"
chmod 1777 "$root/tmp"
