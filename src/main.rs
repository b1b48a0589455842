//! slipway: the binary. CLI wiring only; the work lives in the workspace crates.
#![forbid(unsafe_code)]

mod cli;
mod clusterctl;
mod providers;

/// mimalloc instead of glibc's malloc: at a thousand clusters, glibc's allocator took about a
/// third of the CPU (arena locking, consolidation) and fragmented the heap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
