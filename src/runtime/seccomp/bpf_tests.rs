//! The program against the table's meaning: a small classic-BPF interpreter runs what [`Table::program`]
//! made, and [`decide`] says what the table means, for many numbers and arguments.

use super::*;

const ALLOW: Ret = libc::SECCOMP_RET_ALLOW;
const EPERM: Ret = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: Ret = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Runs `prog` on a `seccomp_data` the way the kernel does, checking what its verifier checks: loads
/// aligned and inside the data, jumps forward and inside the program, no falling off its end.
pub(in super::super) fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> Ret {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let f = prog.get(pc).unwrap_or_else(|| panic!("ran off the end at {pc}"));
        let next = |off: u32| pc + 1 + off as usize;
        pc = match f.code {
            LD => {
                let at = f.k as usize;
                assert!(at.is_multiple_of(4) && at + 4 <= 64, "load at {at}");
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                pc + 1
            }
            AND => {
                acc &= f.k;
                pc + 1
            }
            JA => next(f.k),
            JEQ | JGT | JGE => {
                let hit = match f.code {
                    JEQ => acc == f.k,
                    JGT => acc > f.k,
                    _ => acc >= f.k,
                };
                next(u32::from(if hit { f.jt } else { f.jf }))
            }
            RET => return f.k,
            code => panic!("opcode {code:#x}"),
        };
        assert!(pc < prog.len(), "jump out of the program");
    }
}

fn holds(cond: &Cond, args: &[u64; 6]) -> bool {
    let (arg, value) = match cond.wide {
        true => (args[cond.index as usize], cond.value),
        false => (args[cond.index as usize] & 0xffff_ffff, cond.value),
    };
    match cond.op {
        Op::Eq => arg == value,
        Op::Ne => arg != value,
        Op::Lt => arg < value,
        Op::Le => arg <= value,
        Op::Gt => arg > value,
        Op::Ge => arg >= value,
        Op::MaskedEq(mask) => arg & mask & if cond.wide { u64::MAX } else { 0xffff_ffff } == value,
    }
}

/// What the table means.
fn decide(t: &Table, arch: u32, nr: u32, args: [u64; 6]) -> Ret {
    if arch != NATIVE_ARCH {
        return libc::SECCOMP_RET_KILL_PROCESS;
    }
    match t.calls.get(&nr) {
        Some(steps) => steps
            .iter()
            .find(|s| s.rules.iter().any(|r| r.iter().all(|c| holds(c, &args))))
            .map_or(t.default, |s| s.ret),
        None => t.fixed.iter().find(|f| (f.0..=f.1).contains(&nr)).map_or(t.default, |f| f.2),
    }
}

use crate::test_rng::Rng;

const VALUES: [u64; 8] = [0, 1, 8, 39, 40, 0xffff_ffff, 0x1_0000_0000, u64::MAX];

fn random_cond(rng: &mut Rng) -> Cond {
    let wide = rng.below(2) == 0;
    let mut value = VALUES[rng.below(VALUES.len() as u64) as usize];
    if !wide {
        value &= 0xffff_ffff;
    }
    let op = match rng.below(7) {
        0 => Op::Eq,
        1 => Op::Ne,
        2 => Op::Lt,
        3 => Op::Le,
        4 => Op::Gt,
        5 => Op::Ge,
        _ => Op::MaskedEq(VALUES[rng.below(VALUES.len() as u64) as usize]),
    };
    let value = if let Op::MaskedEq(mask) = op { value & mask } else { value };
    Cond { index: rng.below(6) as u8, wide, op, value }
}

fn random_table(rng: &mut Rng, calls: u32) -> Table {
    let rets = [ALLOW, EPERM, ENOSYS, libc::SECCOMP_RET_LOG, libc::SECCOMP_RET_KILL_THREAD];
    let mut t = Table { default: EPERM, fixed: vec![(500, 0x3fff_ffff, ENOSYS)], ..Default::default() };
    for _ in 0..calls {
        let nr = rng.below(520) as u32;
        let steps = (0..rng.below(3) + 1)
            .map(|_| Step {
                ret: rets[rng.below(rets.len() as u64) as usize],
                rules: (0..rng.below(3)).map(|_| (0..rng.below(3)).map(|_| random_cond(rng)).collect()).collect(),
            })
            .collect();
        t.calls.insert(nr, steps);
    }
    t
}

fn args_like(rng: &mut Rng) -> [u64; 6] {
    std::array::from_fn(|_| VALUES[rng.below(VALUES.len() as u64) as usize] ^ (rng.below(4) << (rng.below(2) * 32)))
}

#[test]
fn programs_answer_what_their_tables_mean() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..40 {
        let t = random_table(&mut rng, 20 + round * 10);
        let prog = t.program().unwrap();
        for nr in (0..530).chain([0x3fff_ffff, 0x4000_0000, 0x4000_0001, u32::MAX]) {
            for _ in 0..6 {
                let args = args_like(&mut rng);
                assert_eq!(run(&prog, NATIVE_ARCH, nr, args), decide(&t, NATIVE_ARCH, nr, args), "nr {nr} {args:x?}");
            }
        }
        assert_eq!(run(&prog, 0x4000_0003, 0, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS, "a foreign architecture");
    }
}

#[test]
fn a_long_list_of_alternating_answers_needs_far_jumps_and_still_answers_right() {
    // 2,000 ranges: the root's lower half is far beyond an 8-bit jump.
    let mut t = Table { default: EPERM, ..Default::default() };
    for nr in (0..2000).step_by(2) {
        t.calls.insert(nr, vec![Step { ret: ALLOW, rules: vec![vec![]] }]);
    }
    let prog = t.program().unwrap();
    assert!(prog.iter().any(|f| f.code == JA), "far jumps go through ja");
    for nr in 0..2010 {
        assert_eq!(run(&prog, NATIVE_ARCH, nr, [0; 6]), decide(&t, NATIVE_ARCH, nr, [0; 6]), "nr {nr}");
    }
}

#[test]
fn numbers_answered_without_arguments_never_reach_a_block() {
    // The kernel's action cache needs the number alone to lead to a ret.
    let mut t = Table { default: EPERM, ..Default::default() };
    t.calls.insert(0, vec![Step { ret: ALLOW, rules: vec![vec![]] }]);
    t.calls.insert(1, vec![Step { ret: ENOSYS, rules: vec![] }, Step { ret: ALLOW, rules: vec![vec![]] }]);
    let prog = t.program().unwrap();
    assert!(prog.iter().all(|f| f.code != LD || f.k < 16), "no argument is read: {prog:?}");
    assert_eq!(run(&prog, NATIVE_ARCH, 1, [0; 6]), ALLOW);
    assert_eq!(run(&prog, NATIVE_ARCH, 2, [0; 6]), EPERM);
}

#[test]
fn bad_rules_are_errors() {
    let table = |cond: Cond| {
        let mut t = Table { default: EPERM, ..Default::default() };
        t.calls.insert(3, vec![Step { ret: ALLOW, rules: vec![vec![cond]] }]);
        t.program().unwrap_err()
    };
    let cond = Cond { index: 6, wide: true, op: Op::Eq, value: 0 };
    assert_eq!(table(cond), BpfError::Index(6));
    assert_eq!(table(Cond { index: 0, wide: false, value: 1 << 32, ..cond }), BpfError::Narrow(1 << 32));
    let long = vec![Cond { index: 0, wide: true, op: Op::Gt, value: 7 }; 60];
    let mut t = Table { default: EPERM, ..Default::default() };
    t.calls.insert(3, vec![Step { ret: ALLOW, rules: vec![long] }]);
    assert!(matches!(t.program(), Err(BpfError::Rule(_))));
    let mut t = Table { default: EPERM, ..Default::default() };
    for nr in (0..6000).step_by(2) {
        t.calls.insert(nr, vec![Step { ret: ALLOW, rules: vec![vec![]] }]);
    }
    assert!(matches!(t.program(), Err(BpfError::Length(_))));
}
