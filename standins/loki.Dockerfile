# Stand-in for grafana/loki:3.7.8, built by scripts/standins.sh (`task standins`) where no registry can be
# reached. It reproduces the official image: grafana/loki, cmd/loki/Dockerfile (tag v3.7.8, the same file as in
# the Go module github.com/grafana/loki/v3@v3.7.8): gcr.io/distroless/static:nonroot (CA certificates,
# /etc/passwd, /tmp; no shell) with /usr/bin/loki, /etc/loki/local-config.yaml (cmd/loki/loki-docker-config.yaml),
# /etc/loki and /loki (rules, rules-temp) owned by 10001:10001, /etc/passwd and /etc/group with the loki user
# (10001), USER 10001, WORKDIR /, EXPOSE 3100, ENTRYPOINT and CMD.
# Different: the binary is the lab's static native build (scripts/native-tools.sh); no tzdata.
# The build context (~/.cache/minishop-lab/standins/loki) is laid out by scripts/standins.sh: rootfs/
# (root-owned, modes as they are there), owned/ (/loki), config/ (/etc/loki).
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 owned/ /
COPY --chown=10001:10001 config/ /etc/loki/
LABEL org.opencontainers.image.title="Loki (MiniShop lab stand-in)"
USER 10001
WORKDIR /
EXPOSE 3100
ENTRYPOINT [ "/usr/bin/loki" ]
CMD ["-config.file=/etc/loki/local-config.yaml"]
