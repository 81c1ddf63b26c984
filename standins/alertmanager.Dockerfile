# Stand-in for prom/alertmanager:v0.35.0, built by scripts/standins.sh (`task standins`) where no registry
# can be reached. It reproduces the official image: prometheus/alertmanager, Dockerfile (tag v0.35.0, the same
# file as in the Go module github.com/prometheus/alertmanager@v0.35.0), on quay.io/prometheus/busybox
# (prometheus/busybox, uclibc/Dockerfile: busybox plus CA certificates, nsswitch.conf, /etc/services).
# Same as there: /bin/alertmanager, /bin/amtool, /etc/alertmanager/alertmanager.yml (examples/ha), /etc/alertmanager
# and /alertmanager owned by nobody (g+w), USER nobody, EXPOSE, VOLUME, WORKDIR, ENTRYPOINT and CMD.
# Different: the binaries are the lab's static native builds (scripts/native-tools.sh; the web UI is a
# placeholder page, the API is complete), busybox is Debian's busybox-static with every applet in /bin.
# The build context (~/.cache/minishop-lab/standins/alertmanager) is laid out by scripts/standins.sh: rootfs/
# (root-owned, modes as they are there), owned/ (the data directory), config/ (/etc/alertmanager).
FROM scratch
COPY rootfs/ /
COPY --chown=65534:65534 owned/ /
COPY --chown=65534:65534 config/ /etc/alertmanager/
LABEL org.opencontainers.image.title="Alertmanager (MiniShop lab stand-in)"
USER       nobody
EXPOSE     9093
VOLUME     [ "/alertmanager" ]
WORKDIR    /alertmanager
ENTRYPOINT [ "/bin/alertmanager" ]
CMD        [ "--config.file=/etc/alertmanager/alertmanager.yml", \
             "--storage.path=/alertmanager" ]
