# Stand-in for the repo Dockerfile's target "payment-gateway" (its golang and gcr.io/distroless/static-debian13
# bases cannot be pulled here), built by scripts/standins.sh from this repo's code (CGO_ENABLED=0, -trimpath,
# -s -w, as in the Dockerfile). Same as the target: /healthprobe, /payment-gateway, USER 65532:65532, EXPOSE 8081,
# ENTRYPOINT; the distroless bits: CA certificates, /etc/passwd and /etc/group (root, nobody, nonroot), /tmp.
FROM scratch
# The build context (~/.cache/minishop-lab/standins/payment-gateway/rootfs, root-owned) is laid out by scripts/standins.sh.
COPY rootfs/ /
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/payment-gateway"]
