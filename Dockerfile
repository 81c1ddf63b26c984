# syntax=docker/dockerfile:1
#
# Images of the lab's own programs, one target each (docker-compose.yml builds them):
#
#   minishop      the shop service (package main at the repo root)      -> /minishop, port 8080
#   slack-mock    the Slack incoming-webhook mock (./slackmock)         -> /slack-mock, port 8070
#   payment-gateway  the simulated payment gateway (./paymentgw)        -> /payment-gateway, port 8081
#   healthprobe   the static HTTP health check (./healthprobe), run once by compose to copy itself
#                 into a volume for the third-party images that ship no wget/curl
#   loadgen       the load generator (./loadgen)                        -> /loadgen, /healthz on 8089
#
# Each is a static Go binary (CGO_ENABLED=0) on distroless "static" (CA certificates, tzdata,
# /etc/passwd; no shell, no package manager), run as the unprivileged user 65532 ("nonroot").
# minishop, payment-gateway, slack-mock and loadgen also carry /healthprobe for their compose healthcheck.
#
# Build one by hand:  docker build --target minishop -t minishop .

# Go toolchain: an exact patch release of the go 1.26 line the root go.mod asks for, so the build
# never downloads another toolchain (GOTOOLCHAIN=local makes that an error instead).
FROM golang:1.26.8-bookworm AS deps
ENV CGO_ENABLED=0 \
    GOTOOLCHAIN=local \
    GOFLAGS=-trimpath
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
# Then the sources (see .dockerignore for what stays out).
COPY . .

# One build stage per program, so building one target never compiles (or fails on) another.
FROM deps AS build-minishop
RUN go build -trimpath -ldflags="-s -w" -o /out/minishop .

FROM deps AS build-slack-mock
RUN go build -trimpath -ldflags="-s -w" -o /out/slack-mock ./slackmock

FROM deps AS build-payment-gateway
RUN go build -trimpath -ldflags="-s -w" -o /out/payment-gateway ./paymentgw

FROM deps AS build-healthprobe
RUN go build -trimpath -ldflags="-s -w" -o /out/healthprobe ./healthprobe

FROM deps AS build-loadgen
RUN go build -trimpath -ldflags="-s -w" -o /out/loadgen ./loadgen

# --- final images -----------------------------------------------------------------------------

# The health check alone. Compose runs it as "healthprobe install /probe/healthprobe".
FROM gcr.io/distroless/static-debian13:nonroot AS healthprobe
COPY --from=build-healthprobe /out/healthprobe /healthprobe
USER 65532:65532
ENTRYPOINT ["/healthprobe"]

# The Slack mock: receives Alertmanager's notifications and shows them at http://localhost:8070/.
FROM gcr.io/distroless/static-debian13:nonroot AS slack-mock
COPY --from=build-healthprobe /out/healthprobe /healthprobe
COPY --from=build-slack-mock /out/slack-mock /slack-mock
USER 65532:65532
EXPOSE 8070
ENTRYPOINT ["/slack-mock"]

# The load generator: simulated shoppers at LOADGEN_RATE requests/s, traced as service "loadgen".
FROM gcr.io/distroless/static-debian13:nonroot AS loadgen
COPY --from=build-healthprobe /out/healthprobe /healthprobe
COPY --from=build-loadgen /out/loadgen /loadgen
USER 65532:65532
ENTRYPOINT ["/loadgen"]

# The payment gateway: POST /v1/charges with an Idempotency-Key, traced as service "payment-gateway".
FROM gcr.io/distroless/static-debian13:nonroot AS payment-gateway
COPY --from=build-healthprobe /out/healthprobe /healthprobe
COPY --from=build-payment-gateway /out/payment-gateway /payment-gateway
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/payment-gateway"]

# The shop (last, so a plain `docker build .` builds it).
FROM gcr.io/distroless/static-debian13:nonroot AS minishop
COPY --from=build-healthprobe /out/healthprobe /healthprobe
COPY --from=build-minishop /out/minishop /minishop
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/minishop"]
