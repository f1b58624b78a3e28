# ferrod container images. Two ways to get the same runtime image (a static binary in an
# empty image, `FROM scratch`, a few MB):
#
#   docker build -t ferrod .
#       builds from source in a pinned official Rust image (needs a registry to pull it
#       from, and crates.io), then copies the binary into the runtime image (the last
#       stage, `runtime`).
#
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --profile image \
#     --target x86_64-unknown-linux-gnu --bin ferrod --target-dir target/static
#   docker build --target prebuilt -t ferrod .
#       packages that host-built static binary; pulls nothing, so it works on a machine
#       that reaches no image registry.
#
# `prebuilt` is the first stage on purpose: the classic builder (no BuildKit) builds every
# stage up to the --target one, and the stages below it need the Rust image.

# ---- prebuilt: the host's static binary --------------------------------------------
FROM scratch AS prebuilt
ARG FERROD_BINARY=target/static/x86_64-unknown-linux-gnu/image/ferrod
COPY ${FERROD_BINARY} /ferrod
# No /etc/passwd in an empty image: the process runs as root (uid 0), which owns the
# keyFile that compose mounts (mode 0400). /data/db is created by ferrod.
VOLUME ["/data/db"]
EXPOSE 27017
# Exec form: there is no shell. The subcommand pings 127.0.0.1:27017 over OP_MSG.
HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=5 \
    CMD ["/ferrod", "healthcheck", "--timeout-ms", "2000"]
ENTRYPOINT ["/ferrod"]
CMD ["--bind_ip_all", "--port", "27017", "--dbpath", "/data/db"]

# ---- build: from source, on a pinned Rust image ---------------------------------------
FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
# A static glibc binary (it still resolves compose service names through /etc/hosts and
# DNS), built with the size-optimised `image` profile of Cargo.toml.
RUN target="$(rustc -vV | sed -n 's/^host: //p')" \
    && RUSTFLAGS="-C target-feature=+crt-static" \
       cargo build --profile image --locked --target "$target" --bin ferrod \
    && cp "target/$target/image/ferrod" /ferrod \
    && /ferrod --version

# ---- runtime: the default target, the same instructions as `prebuilt` ------------------
FROM scratch AS runtime
COPY --from=build /ferrod /ferrod
VOLUME ["/data/db"]
EXPOSE 27017
HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=5 \
    CMD ["/ferrod", "healthcheck", "--timeout-ms", "2000"]
ENTRYPOINT ["/ferrod"]
CMD ["--bind_ip_all", "--port", "27017", "--dbpath", "/data/db"]
