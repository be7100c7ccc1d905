//! Faults on nodes this bench did not start (`--cluster FILE`): done by
//! the shell commands of the file's `[faults]` section
//! ([`dynamo_node::config::FaultCommands`]), so the same nemesis drives a
//! cluster on other machines through ssh and systemd, or a local one
//! through commands on its pids. Kill, pause and partition only: the other
//! kinds need the node's files (disk), the bench's proxy in the path
//! (links) or the launcher (membership).

use std::process::{Command, Stdio};
use std::time::Duration;

use dynamo_node::config::{ClusterConfig, FaultCommands, Member};

use super::{Action, Fault, FaultKind, Named};

/// How long one command may take before it is killed (and the fault
/// counted as failed).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A cluster's members and its fault commands.
#[derive(Debug)]
pub struct Remote {
    members: Vec<Member>,
    commands: FaultCommands,
}

impl Remote {
    /// The file's commands, when it has a `[faults]` section.
    pub fn of(config: &ClusterConfig) -> Option<Remote> {
        config.faults.clone().map(|commands| Remote {
            members: config.members.clone(),
            commands,
        })
    }

    /// Whether faults of `kind` can be done with these commands; the
    /// error says what is missing.
    ///
    /// # Errors
    /// A kind that needs more than commands, or a command not given.
    pub fn can_do(commands: Option<&FaultCommands>, kind: FaultKind) -> Result<(), String> {
        let needed: &[&str] = match kind {
            FaultKind::Kill => &["kill", "restart"],
            FaultKind::Pause => &["pause", "resume"],
            FaultKind::Partition => &["partition", "heal"],
            _ => {
                return Err(format!(
                    "{} faults need the processes and files of a cluster this bench starts; with --cluster only kill, \
                     pause and partition can be done (through the cluster file's [faults] commands)",
                    kind.name()
                ))
            }
        };
        let Some(commands) = commands else {
            return Err(format!(
                "{} faults on a cluster this bench did not start need the cluster file's [faults] commands ({}): see \
                 workloads/examples/cluster-3-hosts.toml",
                kind.name(),
                needed.join(", ")
            ));
        };
        let given = commands.commands();
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|name| given.iter().any(|(field, command)| field == name && command.is_none()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} faults need [faults] {} in the cluster file",
                kind.name(),
                missing.join(" and ")
            ))
        }
    }

    fn member(&self, name: &str) -> Result<&Member, String> {
        self.members
            .iter()
            .find(|member| member.name == name)
            .ok_or_else(|| format!("no node {name} in the cluster file"))
    }

    fn command(&self, field: &str) -> Result<&str, String> {
        self.commands
            .commands()
            .into_iter()
            .find(|(name, _)| *name == field)
            .and_then(|(_, command)| command)
            .ok_or_else(|| format!("the cluster file has no [faults] {field}"))
    }

    /// Starts `fault`; returns what was run, for the history.
    ///
    /// # Errors
    /// A kind commands cannot do, or a command that failed (its output).
    pub fn inflict(&self, fault: &Fault) -> Result<String, String> {
        match &fault.action {
            Action::Kill => self.on_targets("kill", fault),
            Action::Pause => self.on_targets("pause", fault),
            Action::Partition { groups, .. } => {
                let template = self.command("partition")?;
                let mut ran = Vec::new();
                for (side, group) in groups.iter().enumerate() {
                    for name in group {
                        let member = self.member(name)?;
                        for (other_side, others) in groups.iter().enumerate() {
                            if other_side == side {
                                continue;
                            }
                            for other in others {
                                let peer = self.member(other)?;
                                ran.push(run(&FaultCommands::fill(template, member, Some(peer)))?);
                            }
                        }
                    }
                }
                Ok(summarise(&ran))
            }
            other => Remote::can_do(Some(&self.commands), other.kind()).map(|()| String::new()),
        }
    }

    /// Ends `fault`; returns what was run.
    ///
    /// # Errors
    /// A command that failed (its output).
    pub fn heal(&self, fault: &Fault) -> Result<String, String> {
        match &fault.action {
            Action::Kill => self.on_targets("restart", fault),
            Action::Pause => self.on_targets("resume", fault),
            Action::Partition { groups, .. } => {
                let template = self.command("heal")?;
                let mut ran = Vec::new();
                for name in groups.iter().flatten() {
                    ran.push(run(&FaultCommands::fill(template, self.member(name)?, None))?);
                }
                Ok(summarise(&ran))
            }
            _ => Ok(String::new()),
        }
    }

    fn on_targets(&self, field: &str, fault: &Fault) -> Result<String, String> {
        let template = self.command(field)?;
        let mut ran = Vec::new();
        for name in &fault.targets {
            ran.push(run(&FaultCommands::fill(template, self.member(name)?, None))?);
        }
        Ok(summarise(&ran))
    }
}

/// The commands run, in words: the first, and how many more.
fn summarise(ran: &[String]) -> String {
    match ran {
        [] => "no command run".to_string(),
        [one] => format!("ran: {one}"),
        [first, rest @ ..] => format!("ran: {first} (and {} more like it)", rest.len()),
    }
}

/// Runs `command` with `sh -c`, up to [`COMMAND_TIMEOUT`]; returns it.
///
/// # Errors
/// It could not start, timed out, or exited non-zero: with its stderr.
pub fn run(command: &str) -> Result<String, String> {
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("`{command}` could not start: {error}"))?;
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(COMMAND_TIMEOUT) {
        Ok(Ok(output)) if output.status.success() => Ok(command.to_string()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(format!(
                "`{command}` failed ({}): {}",
                output.status,
                stderr.trim().lines().last().unwrap_or("no output on stderr")
            ))
        }
        Ok(Err(error)) => Err(format!("`{command}`: {error}")),
        Err(_) => {
            // SAFETY: signalling a child of ours that has not been reaped
            // (the waiting thread still holds it).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            Err(format!(
                "`{command}` took over {} s and was killed (does it wait for something it started? start long-lived \
                 things in the background, their output redirected)",
                COMMAND_TIMEOUT.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_fails_says_why_and_one_that_succeeds_is_named() {
        assert_eq!(run("true").unwrap(), "true");
        let error = run("echo nope >&2; exit 3").unwrap_err();
        assert!(error.contains("exit status: 3") && error.contains("nope"), "{error}");
    }

    #[test]
    fn missing_commands_and_kinds_commands_cannot_do_are_named() {
        let commands = FaultCommands {
            kill: Some("k {id}".into()),
            ..FaultCommands::default()
        };
        let error = Remote::can_do(Some(&commands), FaultKind::Kill).unwrap_err();
        assert!(error.contains("restart"), "{error}");
        let error = Remote::can_do(None, FaultKind::Pause).unwrap_err();
        assert!(error.contains("pause, resume"), "{error}");
        let error = Remote::can_do(Some(&commands), FaultKind::Disk).unwrap_err();
        assert!(error.contains("only kill, pause and partition"), "{error}");
    }
}
