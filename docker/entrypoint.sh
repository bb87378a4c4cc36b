#!/bin/sh
# The image's entrypoint, which behaves like apache/kafka's: no command
# starts the broker (/etc/kafka/docker/run); any other command is run, so
# `docker run <image> sh -c '...'` and testcontainers' start-up work.
# gregor's own arguments are kept for the images before this one:
# `serve [flags]` or bare flags start the broker with those flags, and
# `health` and the other subcommands run gregor.
if [ "$#" -eq 0 ]; then
	exec /etc/kafka/docker/run
fi
case "$1" in
serve)
	shift
	exec /etc/kafka/docker/run "$@"
	;;
-*)
	exec /etc/kafka/docker/run "$@"
	;;
health | help)
	exec /usr/bin/gregor "$@"
	;;
esac
exec "$@"
