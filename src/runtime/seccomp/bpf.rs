//! One seccomp program in classic BPF, made from a [`Table`] of what each syscall number gets.
//!
//! The numbers are found by a binary search over ranges (as libseccomp's programs do), not by one compare
//! per listed syscall: the kernel checks, JITs and, at install, runs the program once for every syscall
//! number to fill its per-number action cache, so each of those costs grows with the program's length and
//! with how deep a number sits in it. Docker's allow list of ~370 names comes out at a few hundred
//! instructions (seccompiler's linear program of the same list was 1,629), and every number that is always
//! allowed or always refused is answered without reading an argument, which the kernel's cache needs.
//!
//! Layout: check the architecture (a foreign one kills the process), load the number, walk the tree; a
//! leaf returns an answer or jumps to the block of one syscall whose answer depends on its arguments.

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram};

/// A `SECCOMP_RET_*` value with its data (`SECCOMP_RET_ERRNO | EPERM`).
pub type Ret = u32;

/// How an argument is compared with a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `arg & mask == value`.
    MaskedEq(u64),
}

/// One comparison on argument `index` (0-5); `wide` compares all 64 bits, else the lower 32 (an `int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub wide: bool,
    pub op: Op,
    pub value: u64,
}

/// One way to get a step's answer: all its conditions hold. No condition: always.
pub type Rule = Vec<Cond>;

/// An answer and the rules that give it: any one that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub ret: Ret,
    pub rules: Vec<Rule>,
}

/// What each number gets: its steps in order (the first that holds answers), else `default`. A number
/// not in `calls` gets the answer of the `fixed` range (`first..=last`) it is in, else `default`.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub default: Ret,
    pub calls: BTreeMap<u32, Vec<Step>>,
    pub fixed: Vec<(u32, u32, Ret)>,
}

/// Why a table made no program.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    #[error("argument index {0} (a syscall has 6)")]
    Index(u8),
    #[error("value {0:#x} compared with a 32-bit argument")]
    Narrow(u64),
    #[error("a rule too long for a jump ({0} instructions)")]
    Rule(usize),
    #[error("a program of {0} instructions (the kernel takes 4096)")]
    Length(usize),
}

/// The kernel's `BPF_MAXINSNS`.
const MAX_LEN: usize = 4096;

// BPF_LD|BPF_W|BPF_ABS, BPF_ALU|BPF_AND|BPF_K, BPF_JMP|{BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE}|BPF_K, BPF_RET|BPF_K.
const LD: u16 = 0x20;
const AND: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const RET: u16 = 0x06;

/// `struct seccomp_data`: `nr`, `arch`, then `args[6]` from byte 16 (the lower half first: the
/// architectures built for are little-endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_lo(index: u8) -> u32 {
    16 + 8 * index as u32
}

#[cfg(not(target_endian = "little"))]
compile_error!("seccomp argument offsets assume a little-endian architecture");

/// This architecture's `AUDIT_ARCH_*`, the value of `seccomp_data.arch` for its native calls.
pub const NATIVE_ARCH: u32 = if cfg!(target_arch = "x86_64") {
    0xC000_003E
} else if cfg!(target_arch = "aarch64") {
    0xC000_00B7
} else if cfg!(target_arch = "riscv64") {
    0xC000_00F3
} else {
    0
};

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// What a range of numbers leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Ret(Ret),
    Block(usize),
}

/// An instruction of the tree, or a jump to a block placed after it.
#[derive(Debug)]
enum Insn {
    Real(sock_filter),
    ToBlock(usize),
}

impl Table {
    /// The program for this table on the native architecture.
    pub fn program(&self) -> Result<BpfProgram, BpfError> {
        let (ranges, blocks) = self.ranges();
        let mut prog =
            vec![stmt(LD, ARCH), jump(JEQ, NATIVE_ARCH, 1, 0), stmt(RET, libc::SECCOMP_RET_KILL_PROCESS), stmt(LD, NR)];
        let tree = tree(&ranges);
        let block_code = blocks.iter().map(|steps| block(steps, self.default)).collect::<Result<Vec<_>, _>>()?;
        let mut start = prog.len() + tree.len();
        let mut starts = Vec::with_capacity(block_code.len());
        for code in &block_code {
            starts.push(start);
            start += code.len();
        }
        if start > MAX_LEN {
            return Err(BpfError::Length(start));
        }
        for insn in tree {
            let here = prog.len();
            prog.push(match insn {
                Insn::Real(f) => f,
                Insn::ToBlock(b) => stmt(JA, (starts[b] - here - 1) as u32),
            });
        }
        prog.extend(block_code.into_iter().flatten());
        Ok(prog)
    }

    /// The numbers cut into ranges that each lead to one leaf, as `(first number, leaf)` in order from 0,
    /// neighbours never equal; and the steps of each block.
    fn ranges(&self) -> (Vec<(u32, Leaf)>, Vec<&[Step]>) {
        let mut cuts: Vec<u64> = vec![0];
        for &nr in self.calls.keys() {
            cuts.extend([u64::from(nr), u64::from(nr) + 1]);
        }
        for &(first, last, _) in &self.fixed {
            cuts.extend([u64::from(first), u64::from(last) + 1]);
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut blocks = Vec::new();
        let mut ranges: Vec<(u32, Leaf)> = Vec::new();
        for cut in cuts {
            let Ok(nr) = u32::try_from(cut) else { continue };
            let leaf = match self.calls.get(&nr) {
                Some(steps) => match answered_without_arguments(steps) {
                    Some(ret) => Leaf::Ret(ret.unwrap_or(self.default)),
                    None => {
                        blocks.push(steps.as_slice());
                        Leaf::Block(blocks.len() - 1)
                    }
                },
                None => {
                    let fixed = self.fixed.iter().find(|(first, last, _)| (*first..=*last).contains(&nr));
                    Leaf::Ret(fixed.map_or(self.default, |f| f.2))
                }
            };
            if ranges.last().map(|r| r.1) != Some(leaf) {
                ranges.push((nr, leaf));
            }
        }
        (ranges, blocks)
    }
}

/// `Some` when `steps` answer without reading an argument: the answer of the first step that always holds
/// (`Some(None)`: none does, the default) when every step before it never holds.
fn answered_without_arguments(steps: &[Step]) -> Option<Option<Ret>> {
    for step in steps {
        if step.rules.iter().any(|r| r.is_empty()) {
            return Some(Some(step.ret));
        }
        if !step.rules.is_empty() {
            return None;
        }
    }
    Some(None)
}

/// The search over `ranges` (the number is in the accumulator): split at the middle range's first number,
/// the lower half first. A jump too far for a conditional's 8-bit offset goes through a `ja`.
fn tree(ranges: &[(u32, Leaf)]) -> Vec<Insn> {
    if let [(_, leaf)] = ranges {
        return vec![match *leaf {
            Leaf::Ret(ret) => Insn::Real(stmt(RET, ret)),
            Leaf::Block(b) => Insn::ToBlock(b),
        }];
    }
    let mid = ranges.len() / 2;
    let (low, high) = (tree(&ranges[..mid]), tree(&ranges[mid..]));
    let split = ranges[mid].0;
    let mut out = Vec::with_capacity(low.len() + high.len() + 2);
    match u8::try_from(low.len()) {
        Ok(skip) => out.push(Insn::Real(jump(JGE, split, skip, 0))),
        Err(_) => {
            out.push(Insn::Real(jump(JGE, split, 0, 1)));
            out.push(Insn::Real(stmt(JA, low.len() as u32)));
        }
    }
    out.extend(low);
    out.extend(high);
    out
}

/// A jump's target inside one rule's code.
#[derive(Debug, Clone, Copy)]
enum To {
    /// The next instruction.
    On,
    /// The condition holds: the next condition (or the rule's answer).
    Yes,
    /// It doesn't: the next rule.
    No,
}

/// The code of one syscall's steps: each rule's conditions, then its answer; at the end, `default`.
fn block(steps: &[Step], default: Ret) -> Result<Vec<sock_filter>, BpfError> {
    let mut out = Vec::new();
    for step in steps {
        for rule in &step.rules {
            if rule.is_empty() {
                out.push(stmt(RET, step.ret));
                return Ok(out);
            }
            out.extend(rule_code(rule, step.ret)?);
        }
    }
    out.push(stmt(RET, default));
    Ok(out)
}

/// `rule`'s conditions, each jumping on to the next when it holds and past the rule's `ret` when not.
fn rule_code(rule: &Rule, ret: Ret) -> Result<Vec<sock_filter>, BpfError> {
    let mut pending: Vec<(u16, u32, To, To, usize)> = Vec::new();
    let mut ends = Vec::new();
    for (n, cond) in rule.iter().enumerate() {
        for (code, k, jt, jf) in cond_code(cond)? {
            pending.push((code, k, jt, jf, n));
        }
        ends.push(pending.len());
    }
    let len = pending.len() + 1;
    let offset = |at: usize, to: To, cond: usize| -> Result<u8, BpfError> {
        let target = match to {
            To::On => at + 1,
            To::Yes => ends[cond],
            To::No => len,
        };
        u8::try_from(target - at - 1).map_err(|_| BpfError::Rule(len))
    };
    let mut out = Vec::with_capacity(len);
    for (at, &(code, k, jt, jf, cond)) in pending.iter().enumerate() {
        if code == LD || code == AND {
            out.push(stmt(code, k));
        } else {
            out.push(jump(code, k, offset(at, jt, cond)?, offset(at, jf, cond)?));
        }
    }
    out.push(stmt(RET, ret));
    Ok(out)
}

/// One condition as `(code, k, jt, jf)`: loads, masks and compares that end at `Yes` or `No`.
fn cond_code(cond: &Cond) -> Result<Vec<(u16, u32, To, To)>, BpfError> {
    use To::{No, On, Yes};
    if cond.index > 5 {
        return Err(BpfError::Index(cond.index));
    }
    if !cond.wide && cond.value > u64::from(u32::MAX) {
        return Err(BpfError::Narrow(cond.value));
    }
    // Lt, Le and Ne are Ge, Gt and Eq with the outcomes swapped.
    let (base, yes, no) = match cond.op {
        Op::Ne => (Op::Eq, No, Yes),
        Op::Lt => (Op::Ge, No, Yes),
        Op::Le => (Op::Gt, No, Yes),
        op => (op, Yes, No),
    };
    let (lo, hi) = (cond.value as u32, (cond.value >> 32) as u32);
    let (ld_lo, ld_hi) = (arg_lo(cond.index), arg_lo(cond.index) + 4);
    let last = match base {
        Op::Gt => JGT,
        Op::Ge => JGE,
        _ => JEQ,
    };
    let mut code = Vec::new();
    if cond.wide {
        code.push((LD, ld_hi, On, On));
        match base {
            Op::MaskedEq(mask) => {
                code.push((AND, (mask >> 32) as u32, On, On));
                code.push((JEQ, hi, On, no));
            }
            Op::Gt | Op::Ge => {
                code.push((JGT, hi, yes, On));
                code.push((JEQ, hi, On, no));
            }
            _ => code.push((JEQ, hi, On, no)),
        }
    }
    code.push((LD, ld_lo, On, On));
    if let Op::MaskedEq(mask) = base {
        code.push((AND, mask as u32, On, On));
    }
    code.push((last, lo, yes, no));
    Ok(code)
}

#[cfg(test)]
#[path = "bpf_tests.rs"]
pub(super) mod tests;
