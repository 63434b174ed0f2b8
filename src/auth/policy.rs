//! Zulip's password policy (wire.md §10.3): 8 to 100 code points, and at least 10000 guesses by
//! zxcvbn's estimate. It applies when an operator sets a password, and at login only when a
//! stored hash is being upgraded.

use std::fmt;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 100;
pub const MIN_GUESSES: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    TooShort,
    TooLong,
    TooGuessable,
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weakness::TooShort => write!(f, "the password is shorter than {MIN_LENGTH} characters"),
            Weakness::TooLong => write!(f, "the password is longer than {MAX_LENGTH} characters"),
            Weakness::TooGuessable => write!(
                f,
                "the password is too easy to guess (zxcvbn estimates fewer than {MIN_GUESSES} guesses)"
            ),
        }
    }
}

/// The rule above in words, for every form that sets a password.
pub fn rules() -> String {
    format!(
        "Use {MIN_LENGTH} to {MAX_LENGTH} characters that are hard to guess: a few unrelated words, \
         or a mix of letters, digits and symbols. Common words and patterns such as abcd1234 are \
         refused."
    )
}

pub fn check(password: &str) -> Result<(), Weakness> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        Err(Weakness::TooShort)
    } else if length > MAX_LENGTH {
        Err(Weakness::TooLong)
    } else if zxcvbn::zxcvbn(password, &[]).guesses() < MIN_GUESSES {
        Err(Weakness::TooGuessable)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zulip_vectors_and_bounds() {
        assert_eq!(check(""), Err(Weakness::TooShort));
        assert_eq!(check("short"), Err(Weakness::TooShort));
        assert_eq!(check("password"), Err(Weakness::TooGuessable));
        assert_eq!(check("abcd1234"), Err(Weakness::TooGuessable));
        assert_eq!(check("f657gdGGk9"), Ok(()));
        assert_eq!(check("Correct-Horse-9"), Ok(()));
        assert_eq!(check(&"x7Q!".repeat(25)), Ok(()));
        assert_eq!(
            check(&format!("{}y", "x7Q!".repeat(25))),
            Err(Weakness::TooLong)
        );
        // Code points, not bytes.
        assert_ne!(check("ÿ9Ωж€𝄞q#"), Err(Weakness::TooShort));
    }
}
