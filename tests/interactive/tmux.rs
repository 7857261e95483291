//! A real terminal for the interactive tests: a tmux server of the test's own (`tmux -L NAME`), one
//! 80x24 window running bash with the test's mount in `BOCKER_MOUNT`. Keys go in with `send-keys`, the
//! screen comes out with `capture-pane`; dropping it kills that server (by its own socket), also when
//! the test fails.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
    /// The server's socket file, removed once it is killed (tmux leaves it).
    socket_path: Option<std::path::PathBuf>,
}

/// The host shell's prompt, distinct from the container's (`/ # `).
pub const HOST_PROMPT: &str = "host$";

impl Tmux {
    /// A server named after `tag` and this process, with bash in a window of 80 columns and 24 rows.
    pub fn start(tag: &str, mount: &std::path::Path) -> Tmux {
        let mut t = Tmux { socket: format!("bocker-test-{tag}-{}", std::process::id()), socket_path: None };
        // A server left by a killed run of this very process id is gone first.
        let _ = t.tmux(&["kill-server"]);
        let shell = format!(
            "env -u TMUX PS1='{HOST_PROMPT} ' HISTFILE=/dev/null BOCKER_MOUNT='{}' bash --norc --noprofile -i",
            mount.display()
        );
        let out = t.tmux(&["-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "-s", "main", &shell]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        let path = t.tmux(&["display-message", "-p", "#{socket_path}"]).stdout;
        t.socket_path =
            Some(String::from_utf8_lossy(&path).trim_end().into()).filter(|p: &std::path::PathBuf| p.is_absolute());
        t.wait_for("the host shell's prompt", |s| s.contains(HOST_PROMPT));
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux (apt-get install tmux)")
    }

    /// Types `text` as it is (no key names).
    pub fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", "main", "-l", text]);
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Presses keys by tmux's names: `Enter`, `C-c`, `C-p`.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Types `line` and Enter.
    pub fn line(&self, line: &str) {
        self.type_text(line);
        self.keys(&["Enter"]);
    }

    /// Clears the host shell's screen (`clear`), and waits until only its prompt is left, so that what
    /// is typed next is not echoed before the clear.
    pub fn clear(&self) {
        self.line("clear");
        self.wait_for("a cleared screen", |s| {
            let shown: Vec<&str> = s.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
            shown == [HOST_PROMPT]
        });
    }

    /// The screen (wrapped lines joined).
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-J", "-t", "main"]).stdout).into_owned()
    }

    /// The processes the window's shell runs in the foreground now (its children), by pid.
    pub fn shell_children(&self) -> Vec<i32> {
        let pid =
            String::from_utf8_lossy(&self.tmux(&["display-message", "-p", "#{pane_pid}"]).stdout).trim().to_string();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    /// Resizes the window, as a user dragging its corner.
    pub fn resize(&self, cols: u16, rows: u16) {
        let out = self.tmux(&["resize-window", "-t", "main", "-x", &cols.to_string(), "-y", &rows.to_string()]);
        assert!(out.status.success(), "resize-window: {}", String::from_utf8_lossy(&out.stderr));
        // Until the pane has its new size, and a moment more for the client to take its SIGWINCH
        // before the next keys come (it reads its signals and its stdin in one poll).
        let want = format!("{cols}x{rows}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let size = self.tmux(&["display-message", "-p", "-t", "main", "#{pane_width}x#{pane_height}"]);
            if String::from_utf8_lossy(&size.stdout).trim() == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Waits (up to 20 s: a liveness bound) until the screen satisfies `check`; returns that screen.
    pub fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a line of the screen is exactly `line` (trailing blanks aside), `times` times.
    pub fn wait_line(&self, line: &str, times: usize) -> String {
        self.wait_for(&format!("{times} line(s) '{line}'"), |s| count_lines(s, line) >= times)
    }
}

/// How many lines of `screen` are `line`.
pub fn count_lines(screen: &str, line: &str) -> usize {
    screen.lines().filter(|l| l.trim_end() == line).count()
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- the terminal at the failure ----\n{}", self.screen());
        }
        let _ = self.tmux(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}
