# A FROM-scratch image of the static gregor binary. Build the binary first
# (`make image` does both): CGO_ENABLED=0 go build -o bin/gregor-linux ./cmd/gregor
FROM scratch
COPY bin/gregor-linux /gregor
VOLUME ["/data"]
EXPOSE 9092 9644
ENV GREGOR_DATA_DIR=/data \
    GREGOR_LISTEN=0.0.0.0:9092 \
    GREGOR_HTTP_ADDR=0.0.0.0:9644
ENTRYPOINT ["/gregor"]
CMD ["serve"]
