# Stand-in for otel/opentelemetry-collector-contrib:0.161.0, built by scripts/standins.sh (`task standins`)
# where no registry can be reached. It reproduces the official image: open-telemetry/
# opentelemetry-collector-releases, distributions/otelcol-contrib/Dockerfile: FROM scratch, USER 10001:10001,
# /etc/ssl/certs/ca-certificates.crt, /otelcol-contrib (mode 755), /etc/otelcol-contrib/config.yaml,
# ENTRYPOINT, CMD and EXPOSE 4317 4318 55679.
# Different: /otelcol-contrib is our own distribution otelcol-minishop (collector/manifest.yaml, core and
# contrib v0.161.0: every component the lab's configs use, not all of contrib), a static native build
# (scripts/native-tools.sh); the default config.yaml is a small OTLP-to-debug pipeline (compose mounts ours).
FROM scratch
USER 10001:10001
# The build context (~/.cache/minishop-lab/standins/otelcol-contrib/rootfs, root-owned) is laid out by
# scripts/standins.sh.
COPY rootfs/ /
LABEL org.opencontainers.image.title="OpenTelemetry Collector (MiniShop lab stand-in: otelcol-minishop)"
ENTRYPOINT ["/otelcol-contrib"]
CMD ["--config", "/etc/otelcol-contrib/config.yaml"]
EXPOSE 4317 4318 55679
