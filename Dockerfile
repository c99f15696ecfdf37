# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on distroless, running as non-root.
#   docker build -t portcullis --build-arg VERSION=$(git describe --always) .
#   docker run -p 8080:8080 -v $PWD/config.yaml:/etc/portcullis/config.yaml:ro portcullis
FROM golang:1.26-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/portcullis ./cmd/portcullis

FROM gcr.io/distroless/static-debian12:nonroot
# distroless/static: no shell, no package manager; CA roots for https upstreams, JWKS and Redis TLS.
COPY --from=build /out/portcullis /usr/local/bin/portcullis
COPY --chown=nonroot:nonroot config.example.yaml /etc/portcullis/config.yaml
COPY --chown=nonroot:nonroot examples/ /etc/portcullis/examples/
# 65532 = nonroot in distroless; no capabilities needed (ports above 1024).
USER 65532:65532
EXPOSE 8080 9090
ENV PORTCULLIS_CONFIG=/etc/portcullis/config.yaml
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
