# Stand-in for prom/prometheus:v3.16.0, built by scripts/standins.sh (`task standins`) where no registry
# can be reached. It reproduces the official image: prometheus/prometheus, Dockerfile (tag v3.16.0, the same
# file as in the Go module github.com/prometheus/prometheus@v0.316.0), whose base quay.io/prometheus/busybox
# (prometheus/busybox, uclibc/Dockerfile) is busybox plus CA certificates, nsswitch.conf and /etc/services.
# Same as there: /bin/prometheus, /bin/promtool, /etc/prometheus/prometheus.yml (documentation/examples),
# /prometheus owned by nobody with g+w, WORKDIR, USER nobody, EXPOSE, VOLUME, ENTRYPOINT and CMD.
# Different: the binaries are the lab's static native builds (scripts/native-tools.sh), busybox is Debian's
# busybox-static with every applet linked in /bin (sh, wget, ...); no zoneinfo, LICENSE or NOTICE files.
# The build context (~/.cache/minishop-lab/standins/prometheus) is laid out by scripts/standins.sh: rootfs/
# (root-owned, modes as they are there), owned/ (the data directory), config/ (/etc/prometheus).
FROM scratch
COPY rootfs/ /
COPY --chown=65534:65534 owned/ /
COPY --chown=65534:65534 config/ /etc/prometheus/
LABEL org.opencontainers.image.title="Prometheus (MiniShop lab stand-in)" \
      io.prometheus.image.variant="busybox"
WORKDIR    /prometheus
USER       nobody
EXPOSE     9090
VOLUME     [ "/prometheus" ]
ENTRYPOINT [ "/bin/prometheus" ]
CMD        [ "--config.file=/etc/prometheus/prometheus.yml", \
             "--storage.tsdb.path=/prometheus" ]
