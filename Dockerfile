# A FROM-scratch image of the static gregor binary. Build the binary first
# (`make image` does both): CGO_ENABLED=0 go build -o bin/gregor-linux ./cmd/gregor
FROM scratch
COPY bin/gregor-linux /gregor
VOLUME ["/data"]
EXPOSE 9092 29092 9644
# The Kafka listener defaults to 0.0.0.0:9092 (--listen), or set
# GREGOR_LISTENERS / GREGOR_ADVERTISED_LISTENERS for named listeners.
ENV GREGOR_DATA_DIR=/data \
    GREGOR_HTTP_ADDR=0.0.0.0:9644
ENTRYPOINT ["/gregor"]
CMD ["serve"]
