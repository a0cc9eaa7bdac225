# Rampart in a container: a static binary on distroless, run as a
# non-root user, its state in a volume, its root filesystem read-only.
#
#   docker build -t rampart .
#   docker run --read-only -p 443:443 -p 80:80 \
#     --sysctl net.ipv4.ip_unprivileged_port_start=0 \
#     -v rampart-state:/var/lib/rampart -v ./rampart.yaml:/etc/rampart/rampart.yaml:ro rampart
#
# deploy/compose.yaml runs it beside gunicorn on a shared unix socket.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
# Static: no libc, so it runs on distroless/static (or scratch).
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/rampartproxy/rampart/internal/version.Release=${VERSION}" \
      -o /out/rampart ./cmd/rampart \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rampart /usr/local/bin/rampart
# The state directory belongs to the nonroot user (65532), so that a new
# named volume mounted on it does too.
COPY --from=build --chown=65532:65532 /out/state /var/lib/rampart
USER 65532:65532
ENV XDG_DATA_HOME=/var/lib
VOLUME ["/var/lib/rampart"]
EXPOSE 443 80
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["serve", "--config", "/etc/rampart/rampart.yaml"]
