//! Reading passwords and recovery keys: a terminal prompt, or standard input when asked.
//! Never from arguments or the environment.

use std::io::{BufRead, IsTerminal, Read};

use zeroize::Zeroizing;

use crate::failure::Failure;

/// Reads the first line of standard input (without its line ending).
pub fn password_from_stdin() -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Failure::usage(
            format!("could not read the password from standard input: {e}"),
            "pipe the password in, e.g. printf '%s\\n' \"$PW\" | coffer ...",
        )
    })?;
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        return Err(Failure::usage(
            "standard input held no password",
            "pipe the password as the first line of standard input",
        ));
    }
    Ok(Zeroizing::new(pw.as_bytes().to_vec()))
}

/// Reads all of standard input (a recovery key may be split over lines).
pub fn recovery_key_from_stdin() -> Result<Zeroizing<String>, Failure> {
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_to_string(&mut text)
        .map_err(|e| {
            Failure::usage(
                format!("could not read the recovery key from standard input: {e}"),
                "pipe the 64-digit key in",
            )
        })?;
    Ok(text)
}

fn no_terminal(what: &str, flag: &str) -> Failure {
    Failure::usage(
        format!("no terminal to ask for the {what}"),
        format!("run in a terminal, or pass {flag} and pipe it in"),
    )
}

/// Asks once on the terminal.
pub fn prompt(label: &str, what: &str, flag: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal(what, flag));
    }
    let s = Zeroizing::new(rpassword::prompt_password(label).map_err(|e| {
        Failure::usage(
            format!("could not read the {what}: {e}"),
            "try again in a terminal",
        )
    })?);
    if s.is_empty() {
        return Err(Failure::usage(
            format!("empty {what}"),
            "type it at the prompt",
        ));
    }
    Ok(Zeroizing::new(s.as_bytes().to_vec()))
}

/// Asks for a new password twice.
pub fn prompt_new_password() -> Result<Zeroizing<Vec<u8>>, Failure> {
    let a = prompt("New password: ", "password", "--password-stdin")?;
    let b = prompt("Repeat the password: ", "password", "--password-stdin")?;
    if *a != *b {
        return Err(Failure::usage(
            "the two passwords differ",
            "run the command again",
        ));
    }
    Ok(a)
}

/// The password: from stdin with `from_stdin`, else a prompt (twice when `new`).
pub fn password(from_stdin: bool, new: bool) -> Result<Zeroizing<Vec<u8>>, Failure> {
    match (from_stdin, new) {
        (true, _) => password_from_stdin(),
        (false, true) => prompt_new_password(),
        (false, false) => prompt("Password: ", "password", "--password-stdin"),
    }
}

/// Asks a yes/no question on the terminal; false when there is none.
pub fn confirm(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "no terminal to confirm on",
            "pass --yes to confirm non-interactively",
        ));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("could not read the answer: {e}"), "pass --yes"))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
