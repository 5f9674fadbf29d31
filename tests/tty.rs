//! Interactive use (`docker run -it image ginit -- sh`): the program owns the terminal's
//! foreground, Ctrl-C reaches it, and a shell's job control works without hanging ginit.

mod common;

use common::*;

fn in_namespace(args: &[&str]) -> Vec<String> {
    let mut argv = unshare_prefix();
    argv.push("--mount-proc".into());
    argv.push(GINIT.into());
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

#[test]
fn ctrl_c_reaches_the_program_in_the_foreground() {
    let mut pty = Pty::spawn(&in_namespace(&["--", HELPER, "tty"]), &[]);
    pty.expect("fg=yes");
    pty.send("\x03");
    pty.expect("got SIGINT");
    assert_eq!(pty.wait(), 0);
}

#[test]
fn an_interactive_shell_has_working_job_control() {
    let mut pty = Pty::spawn(
        &in_namespace(&["--", "/bin/sh", "-i"]),
        &[("PS1", "test-prompt$ ")],
    );
    pty.expect("test-prompt$ ");
    pty.send("echo marker-$((40+2))\n");
    pty.expect("marker-42");
    pty.expect("test-prompt$ ");
    // A foreground job reading the terminal...
    pty.send("cat\n");
    pty.send("first-line\n");
    pty.expect("first-line"); // the terminal's echo
    pty.expect("first-line"); // cat's copy: cat runs in the foreground
    // ...is stopped by Ctrl-Z and the shell gets the terminal back.
    pty.send("\x1a");
    pty.expect("Stopped");
    pty.expect("test-prompt$ ");
    pty.send("fg\n");
    pty.send("second-line\n");
    pty.expect("second-line");
    pty.expect("second-line");
    // Ctrl-C ends the job, not the shell, and not ginit.
    pty.send("\x03");
    pty.expect("test-prompt$ ");
    pty.send("exit 7\n");
    assert_eq!(pty.wait(), 7);
}
