# A FROM-scratch image of the static gregor binary, with a static busybox
# (sh and coreutils) and a static bash from Debian's packages, laid out by
# scripts/image-root.sh; `make image` builds both. It behaves like
# apache/kafka's image: the KAFKA_* environment configures the broker
# (README, "Switching from Kafka"), /etc/kafka/docker/run starts it, no
# command starts it too, any other command is run.
FROM scratch
COPY bin/image-root/ /
VOLUME ["/data"]
EXPOSE 9092 29092 9644
# The Kafka listener defaults to 0.0.0.0:9092 advertised as localhost:9092;
# KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS (or GREGOR_LISTENERS /
# GREGOR_ADVERTISED_LISTENERS) name listeners. Data goes to /data unless
# KAFKA_LOG_DIRS or GREGOR_DATA_DIR says otherwise (docker/run).
# GREGOR_KAFKA_ENV=1 makes `gregor serve` read the KAFKA_* and CLUSTER_ID
# variables; outside the image it does not.
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    GREGOR_HTTP_ADDR=0.0.0.0:9644 \
    GREGOR_KAFKA_ENV=1
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
