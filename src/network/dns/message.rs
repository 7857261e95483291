//! The pure message logic of the embedded DNS server: what to do with one datagram (answer it, forward
//! it, or drop it), the answers it builds, and the check that an upstream's reply belongs to a forwarded
//! query. No sockets here, so every rule can be tested on bytes; every input is hostile and nothing here
//! panics on one.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Answer;

/// The largest reply sent over UDP to a client (RFC 1035's limit; EDNS's larger sizes are not offered).
pub const UDP_MAX: usize = 512;

/// The largest DNS message over TCP (its two-byte length prefix).
pub const TCP_MAX: usize = 65535;

/// What to do with one received datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send nothing back (malformed beyond a header, or a response).
    Drop,
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Not ours: send the query's bytes unchanged to these upstreams, in order.
    Forward(Forward),
}

/// A query to forward, with what its reply must match.
#[derive(Debug, PartialEq, Eq)]
pub struct Forward {
    pub upstreams: Vec<SocketAddr>,
    pub id: u16,
    pub question: Query,
}

/// What to do with `packet`, a query that came to `server` from `client`; `names` is asked about the
/// question's name (as [`super::Names::answer`] wants it). `max` is the largest reply the transport takes
/// ([`UDP_MAX`] or [`TCP_MAX`]): our own answers beyond it are cut, with TC set.
pub fn handle(packet: &[u8], max: usize, names: impl FnOnce(&str) -> Answer) -> Action {
    let mut decoder = BinDecoder::new(packet);
    let Ok(header) = Header::read(&mut decoder) else {
        return Action::Drop;
    };
    if header.message_type() == MessageType::Response {
        return Action::Drop;
    }
    let Ok(query) = Message::from_vec(packet) else {
        return reply(&header, None, ResponseCode::FormErr, false, &[], max);
    };
    if query.op_code() != OpCode::Query {
        return reply(&header, None, ResponseCode::NotImp, false, &[], max);
    }
    let [question] = query.queries() else {
        return reply(&header, None, ResponseCode::FormErr, false, &[], max);
    };
    if question.query_class() != DNSClass::IN {
        return reply(&header, Some(question), ResponseCode::NotImp, false, &[], max);
    }
    match names(&key(question.name())) {
        Answer::Ours(addrs) if addrs.is_empty() => {
            reply(&header, Some(question), ResponseCode::NXDomain, true, &[], max)
        }
        Answer::Ours(addrs) => {
            let wanted = matches!(question.query_type(), RecordType::A | RecordType::ANY);
            let addrs = if wanted { &addrs[..] } else { &[] };
            reply(&header, Some(question), ResponseCode::NoError, true, addrs, max)
        }
        Answer::Forward(upstreams) if upstreams.is_empty() => servfail(packet),
        Answer::Forward(upstreams) => {
            Action::Forward(Forward { upstreams, id: header.id(), question: question.clone() })
        }
    }
}

/// The SERVFAIL answer to `packet` (a forward that no upstream answered), or nothing if it is not a query.
pub fn servfail(packet: &[u8]) -> Action {
    match head(packet) {
        Some((header, question)) if header.message_type() == MessageType::Query => {
            reply(&header, question.as_ref(), ResponseCode::ServFail, false, &[], UDP_MAX)
        }
        _ => Action::Drop,
    }
}

/// Whether `reply` answers the forwarded query: a response with its ID and its question.
pub fn answers(reply: &[u8], forward: &Forward) -> bool {
    match head(reply) {
        Some((header, Some(question))) => {
            header.message_type() == MessageType::Response && header.id() == forward.id && question == forward.question
        }
        _ => false,
    }
}

/// The header and first question of a message, read no further (an upstream's records need not parse).
fn head(packet: &[u8]) -> Option<(Header, Option<Query>)> {
    let mut decoder = BinDecoder::new(packet);
    let header = Header::read(&mut decoder).ok()?;
    let question = if header.query_count() > 0 { Some(Query::read(&mut decoder).ok()?) } else { None };
    Some((header, question))
}

/// The name as [`super::Names::answer`] takes it: its labels ASCII-lowercased, joined by dots, without the
/// root's; a byte that is not a letter, digit, `-` or `_` is written `\DDD` (so no name with a dot inside
/// a label or a control byte can pass for another).
pub fn key(name: &Name) -> String {
    let mut s = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        for &b in label {
            match b {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => s.push(char::from(b)),
                b'A'..=b'Z' => s.push(char::from(b.to_ascii_lowercase())),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
    }
    s
}

/// Our own answer to the query of `header`: its question (as it came), `code`, AA if `ours`, RA, and an A
/// record of TTL 0 for each of `addrs`, as many as fit in `max` bytes (TC set if some did not).
fn reply(
    header: &Header,
    question: Option<&Query>,
    code: ResponseCode,
    ours: bool,
    addrs: &[Ipv4Addr],
    max: usize,
) -> Action {
    let mut head = Header::response_from_request(header);
    head.set_authoritative(ours).set_recursion_available(true).set_response_code(code);
    let mut message = Message::new();
    message.set_header(head);
    if let Some(q) = question {
        message.add_query(q.clone());
    }
    let Ok(bare) = message.to_vec() else {
        return Action::Drop;
    };
    if addrs.is_empty() {
        return Action::Reply(bare);
    }
    let Some(q) = question else {
        return Action::Reply(bare);
    };
    // Each A record is a compressed owner name (2 bytes), type, class, TTL, length (10) and the address (4).
    let fit = max.saturating_sub(bare.len()) / 16;
    let kept = addrs.len().min(fit);
    for ip in addrs.iter().take(kept) {
        message.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(*ip))));
    }
    if kept < addrs.len() {
        message.set_truncated(true);
    }
    match message.to_vec() {
        Ok(bytes) if bytes.len() <= max => Action::Reply(bytes),
        // Our estimate was wrong (the owner name not compressed): the bare answer, cut.
        _ => {
            let mut cut = Message::new();
            cut.set_header(head);
            cut.add_query(q.clone()).set_truncated(true);
            cut.to_vec().map(Action::Reply).unwrap_or(Action::Drop)
        }
    }
}
