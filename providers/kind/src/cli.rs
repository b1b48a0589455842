//! Running the `kind` and `docker` binaries: finding them on a PATH (the process's, or one a
//! test supplies), feeding stdin, and turning every failure into a [`ProviderError`] that names
//! the command, its exit status and its trimmed stderr. Stdout is never put into a message: it
//! carries kubeconfigs.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::{io::AsyncWriteExt, process::Command};

use slipway_providers::ProviderError;

/// Where to get kind.
pub const KIND_INSTALL: &str = "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) \
     and put it on the controller's PATH";
/// Where to get Docker.
pub const DOCKER_INSTALL: &str = "install Docker (https://docs.docker.com/engine/install/) and put \
     `docker` on the controller's PATH";

/// The binaries the kind provider runs, looked up on one PATH.
#[derive(Clone, Debug)]
pub struct Tools {
    path: OsString,
}

impl Default for Tools {
    fn default() -> Self {
        Self::with_path(std::env::var_os("PATH").unwrap_or_default())
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// A command that ran to its end, successfully or not.
struct Finished {
    /// The command as shown in messages.
    shown: String,
    status: std::process::ExitStatus,
    output: Output,
}

impl Finished {
    /// The output, or a transient error naming the command, its exit status and its stderr.
    fn success(self) -> Result<Output, ProviderError> {
        if self.status.success() {
            return Ok(self.output);
        }
        let status = self
            .status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("exit status {c}"));
        Err(ProviderError::transient(format!(
            "{} failed with {status}: {}",
            self.shown,
            trimmed(&self.output.stderr)
        )))
    }
}

/// What a failed `docker` command's standard error says went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DockerFailure {
    /// The container named does not exist.
    NoSuchContainer,
    /// Anything else.
    Other,
}

/// Classifies a failed `docker` command by its standard error.
///
/// The docker CLI gives no machine-readable error: every failure exits 1 and the daemon's
/// reason is only text on stderr. This is the one place that reads that text, so that callers
/// decide on a [`DockerFailure`] rather than on a message.
pub fn classify_docker_stderr(stderr: &str) -> DockerFailure {
    if stderr.contains("No such container") {
        DockerFailure::NoSuchContainer
    } else {
        DockerFailure::Other
    }
}

impl Tools {
    /// Tools found on `path` (a `PATH`-style list of directories).
    pub fn with_path(path: impl Into<OsString>) -> Self {
        Self { path: path.into() }
    }

    /// The executable `name` on this PATH.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }

    /// Runs `bin args...` with `stdin`, and fails unless it exits 0.
    pub async fn run(
        &self,
        bin: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, ProviderError> {
        self.exec(bin, args, stdin).await?.success()
    }

    /// `docker rm --force <name>`; a container that does not exist counts as removed.
    pub async fn remove_container(&self, name: &str) -> Result<(), ProviderError> {
        let done = self.exec("docker", &["rm", "--force", name], None).await?;
        if !done.status.success()
            && classify_docker_stderr(&done.output.stderr) == DockerFailure::NoSuchContainer
        {
            return Ok(());
        }
        done.success().map(drop)
    }

    /// Runs `bin args...` with `stdin` to its end; fails only if it cannot be run.
    async fn exec(
        &self,
        bin: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Finished, ProviderError> {
        let exe = self.find(bin).ok_or_else(|| missing(bin))?;
        let shown = format!("`{bin} {}`", args.join(" "));
        let mut child = Command::new(exe)
            .args(args)
            .env("PATH", &self.path)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| ProviderError::Transient {
                message: format!("{shown} could not start"),
                source: Some(Box::new(e)),
            })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data)
                .await
                .map_err(|e| ProviderError::Transient {
                    message: format!("writing the standard input of {shown}"),
                    source: Some(Box::new(e)),
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ProviderError::Transient {
                message: format!("{shown} did not finish"),
                source: Some(Box::new(e)),
            })?;
        Ok(Finished {
            shown,
            status: out.status,
            output: Output {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
        })
    }

    /// Fails with `Unavailable` unless kind and docker are installed and the Docker daemon
    /// answers.
    pub async fn check(&self) -> Result<(), ProviderError> {
        for bin in ["kind", "docker"] {
            if self.find(bin).is_none() {
                return Err(missing(bin));
            }
        }
        match self
            .run("docker", &["info", "--format", "{{.ServerVersion}}"], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(ProviderError::unavailable(
                "the Docker daemon",
                format!(
                    "`docker info` failed, so kind cannot create or inspect node containers; \
                     start Docker: {e}"
                ),
            )),
        }
    }
}

/// The error for a binary that is not on the PATH.
pub fn missing(bin: &str) -> ProviderError {
    let how = if bin == "docker" {
        DOCKER_INSTALL
    } else {
        KIND_INSTALL
    };
    ProviderError::unavailable(
        format!("the `{bin}` binary"),
        format!("it is not on the controller's PATH; {how}"),
    )
}

/// The end of a command's stderr, on one line, short enough for a condition message.
pub fn trimmed(stderr: &str) -> String {
    const MAX: usize = 600;
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" | ");
    if joined.is_empty() {
        return "no error output".into();
    }
    if joined.len() <= MAX {
        return joined;
    }
    let mut start = joined.len() - MAX;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &joined[start..])
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_trimmed_to_its_end_on_one_line() {
        assert_eq!(trimmed(""), "no error output");
        assert_eq!(
            trimmed("ERROR: failed to create cluster\n\n  node(s) already exist\n"),
            "ERROR: failed to create cluster | node(s) already exist"
        );
        let long = "x".repeat(2000) + "\nthe end";
        let t = trimmed(&long);
        assert!(t.len() <= 603 && t.starts_with("...") && t.ends_with("the end"));
    }

    #[test]
    fn docker_stderr_is_classified() {
        let table = [
            (
                "Error response from daemon: No such container: c1-worker",
                DockerFailure::NoSuchContainer,
            ),
            (
                "Error: No such container: c1-worker",
                DockerFailure::NoSuchContainer,
            ),
            (
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock",
                DockerFailure::Other,
            ),
            ("", DockerFailure::Other),
        ];
        for (stderr, want) in table {
            assert_eq!(classify_docker_stderr(stderr), want, "{stderr}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn removing_a_missing_container_succeeds_and_other_failures_do_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("slipway-kind-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let docker = dir.join("docker");
        let fake = |script: &str| {
            std::fs::write(&docker, script).unwrap();
            std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let tools = Tools::with_path(&dir);
        fake("#!/bin/sh\necho \"Error response from daemon: No such container: $3\" >&2\nexit 1\n");
        tools.remove_container("gone").await.unwrap();
        fake("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n");
        let e = tools.remove_container("c1-worker").await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("Cannot connect"), "{e}");
        fake("#!/bin/sh\necho \"$3\"\n");
        tools.remove_container("c1-worker").await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_binaries_name_themselves_and_how_to_get_them() {
        let e = missing("kind").to_string();
        assert!(e.starts_with("the `kind` binary is unavailable"), "{e}");
        assert!(e.contains("kind.sigs.k8s.io"), "{e}");
        let e = missing("docker").to_string();
        assert!(
            e.contains("`docker`") && e.contains("docs.docker.com"),
            "{e}"
        );
    }
}
