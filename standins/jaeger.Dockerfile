# Stand-in for jaegertracing/jaeger:2.13.0, built by scripts/standins.sh (`task standins`) where no registry
# can be reached. It reproduces the official image: jaegertracing/jaeger, cmd/jaeger/Dockerfile (release
# stage; the same file as in the Go module github.com/jaegertracing/jaeger@v1.76.0 = 2.13.0), whose base is
# scripts/build/docker/base/Dockerfile: alpine (busybox: sh, wget, ...) plus CA certificates and
# /etc/mime.types. Same as there: /cmd/jaeger/jaeger-linux, /cmd/jaeger/sampling-strategies.json,
# ENV JAEGER_LISTEN_HOST, every EXPOSE, VOLUME /tmp, ENTRYPOINT, USER 10001 (no passwd entry, as there).
# Different: the binary is the lab's static native build (tools/jaeger/go.mod via scripts/native-tools.sh),
# which has no embedded UI (the API on 16686 is complete); busybox is Debian's busybox-static (every applet in
# /bin) instead of alpine, so there is no apk.
# The build context (~/.cache/minishop-lab/standins/jaeger/rootfs, root-owned) is laid out by scripts/standins.sh.
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="Jaeger (MiniShop lab stand-in)"
ENV JAEGER_LISTEN_HOST=0.0.0.0
# Sampling config HTTP and gRPC, Collector OTLP gRPC and HTTP, Collector HTTP and gRPC, Zipkin, Web HTTP,
# health check gRPC and HTTP.
EXPOSE 5778 5779 4317 4318 14268 14250 9411 16686 13132 13133
VOLUME ["/tmp"]
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
USER 10001
