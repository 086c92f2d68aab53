//! Words quoted for a POSIX shell (`shell-words`): for a person to read or
//! paste, and for the scripts sandbox hands to `/bin/sh` in a container.

use std::borrow::Cow;

/// `word` as one shell word with its literal meaning: left bare when
/// nothing in it is special, else single-quoted (`'` as `'\''`).
pub fn quote(word: &str) -> Cow<'_, str> {
    let quoted = shell_words::quote(word);
    // shell-words leaves `{`, `}` and `!` bare: bash (which is /bin/sh in
    // some images) expands `a{b,c}` into two words, and an interactive one
    // expands `!` from its history when the line is pasted.
    if quoted == word && word.contains(['{', '}', '!']) {
        return Cow::Owned(format!("'{word}'"));
    }
    quoted
}

/// `words` as one command line, each quoted as [`quote`] does.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_where_a_shell_needs_it() {
        let words = ["python", "-c", "print('hi')", ""].map(String::from);
        assert_eq!(join(&words), r"python -c 'print('\''hi'\'')' ''");
        assert_eq!(quote("a-b_c.d/e:f,g+h@i"), "a-b_c.d/e:f,g+h@i");
        for special in ["a b", "$HOME", "*", "~", "x=1", "a{b,c}", "!1", "#", "a\tb"] {
            assert!(quote(special).starts_with('\''), "{special}");
        }
    }

    /// What `sh` makes of the quoted words is the words.
    #[test]
    fn sh_reads_back_the_words() {
        let words = [
            "it's",
            "a b",
            "$HOME",
            "*",
            "~",
            "a{b,c}",
            "!x",
            "two\nlines",
            "",
            "\\",
            "\"",
        ];
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("printf '[%s]' {}", join(&words))])
            .output()
            .unwrap();
        let expected: String = words.iter().map(|w| format!("[{w}]")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }
}
