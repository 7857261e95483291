//! Who a container's command runs as: Docker's `--user` forms (`NAME`, `UID`, `NAME:GROUP`, `UID:GID`,
//! empty for root) resolved in the container's own `/etc/passwd` and `/etc/group`, read inside its mount
//! namespace once `/` is its root (so no path of the image can point outside it), as runc does. Pure: the
//! caller reads the two files.

/// The largest uid or gid taken.
pub const MAX_ID: u32 = i32::MAX as u32;

/// The ids a command runs with, and its home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those `/etc/group` lists the user in, unless a group was named.
    pub groups: Vec<u32>,
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        match f.as_slice() {
            [name, _, uid, gid, _, home, ..] if !name.is_empty() && !name.starts_with('#') => {
                Some(Passwd { name, uid: uid.parse().ok()?, gid: gid.parse().ok()?, home })
            }
            _ => None,
        }
    })
}

/// `(name, gid, members)` of each well-formed line of `/etc/group`.
fn groups(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        match f.as_slice() {
            [name, _, gid, members, ..] if !name.is_empty() && !name.starts_with('#') => {
                Some((*name, gid.parse().ok()?, members.split(',').filter(|m| !m.is_empty()).collect()))
            }
            _ => None,
        }
    })
}

/// Resolves `user` against the contents of `/etc/passwd` and `/etc/group` (empty if missing). A name not
/// found is an error, with Docker's words; a number not found is taken as it is (group 0, home `/`).
pub fn resolve(user: &str, passwd_text: &str, group_text: &str) -> Result<Ids, String> {
    let (user_part, group_part) = match user.trim().split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user.trim(), None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    // Ids past 2^31 - 1 are refused, as runc refuses them: (uid_t)-1 means "unchanged" to setresuid.
    let id_ok = |n: u32| n <= MAX_ID;
    let entry = match user_part.parse::<u32>() {
        Ok(uid) if !id_ok(uid) => return Err(format!("uid {uid} is out of range (at most {MAX_ID})")),
        Ok(uid) => passwd(passwd_text).find(|p| p.uid == uid).map(Ok).unwrap_or(Err(uid)),
        Err(_) => Ok(passwd(passwd_text)
            .find(|p| p.name == user_part)
            .ok_or_else(|| format!("unable to find user {user_part}: no matching entries in passwd file"))?),
    };
    if let Ok(p) = &entry {
        if !id_ok(p.uid) || !id_ok(p.gid) {
            return Err(format!("user {user_part}: its passwd ids are out of range (at most {MAX_ID})"));
        }
    }
    let (uid, mut gid, name, home) = match &entry {
        Ok(p) => (p.uid, p.gid, Some(p.name), if p.home.is_empty() { "/" } else { p.home }),
        Err(uid) => (*uid, 0, None, "/"),
    };
    let mut supplementary = Vec::new();
    match group_part.filter(|g| !g.is_empty()) {
        Some(g) => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups(group_text)
                    .find(|(n, _, _)| *n == g)
                    .map(|(_, n, _)| n)
                    .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
            };
        }
        None => {
            if let Some(name) = name {
                supplementary = groups(group_text).filter(|(_, _, m)| m.contains(&name)).map(|(_, n, _)| n).collect();
            }
        }
    }
    if !id_ok(gid) {
        return Err(format!("gid {gid} is out of range (at most {MAX_ID})"));
    }
    supplementary.retain(|g| *g != gid && id_ok(*g));
    supplementary.insert(0, gid);
    supplementary.dedup();
    Ok(Ids { uid, gid, groups: supplementary, home: home.to_string() })
}

/// `env` with `HOME` set to `home` if it has none (Docker sets it from the user's passwd entry).
pub fn with_home(env: &[String], home: &str) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|kv| kv.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nredis:x:999:1000::/data:/sbin/nologin\n\
                          # a comment\nbroken line\nwww:x:33:33:www:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:root\nwheel:x:10:root,redis\nredis:x:1000:\nwww-data:x:33:\nextra:x:2000:www\n";

    #[test]
    fn names_and_numbers_resolve_as_docker_resolves_them() {
        let root = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.groups.clone(), root.home.as_str()), (0, 0, vec![0, 10], "/root"));
        let redis = resolve("redis", PASSWD, GROUP).unwrap();
        assert_eq!(
            (redis.uid, redis.gid, redis.groups.clone(), redis.home.as_str()),
            (999, 1000, vec![1000, 10], "/data")
        );
        // A numeric uid takes its entry's group and home; one with no entry is group 0 and home /.
        assert_eq!(resolve("33", PASSWD, GROUP).unwrap().groups, [33, 2000]);
        let nobody = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((nobody.uid, nobody.gid, nobody.groups, nobody.home.as_str()), (4242, 0, vec![0], "/"));
        // A named group replaces the primary one and the supplementary ones.
        let g = resolve("redis:www-data", PASSWD, GROUP).unwrap();
        assert_eq!((g.uid, g.gid, g.groups), (999, 33, vec![33]));
        assert_eq!(resolve("1:2", "", "").unwrap().groups, [2]);
    }

    #[test]
    fn ids_past_two_to_the_31_are_refused() {
        for user in ["4294967295", "4294967295:0", "0:4294967295", "2147483648"] {
            assert!(resolve(user, PASSWD, GROUP).is_err(), "{user}");
        }
        assert!(resolve("big", "big:x:4294967295:0::/:/bin/sh\n", "").is_err());
        assert_eq!(resolve("2147483647", "", "").unwrap().uid, 2147483647);
    }

    #[test]
    fn unknown_names_are_refused_in_dockers_words() {
        assert_eq!(
            resolve("nobody", PASSWD, GROUP).unwrap_err(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert!(resolve("redis:nogroup", PASSWD, GROUP).unwrap_err().contains("unable to find group nogroup"));
        assert!(resolve("x", "", "").is_err());
    }

    #[test]
    fn home_is_set_only_when_the_env_has_none() {
        assert_eq!(with_home(&["A=1".into()], "/data"), ["A=1", "HOME=/data"]);
        assert_eq!(with_home(&["HOME=/x".into()], "/data"), ["HOME=/x"]);
    }
}
