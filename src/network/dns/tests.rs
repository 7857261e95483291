//! Tests of the DNS server over real sockets on 127.0.0.0/8 (a fake upstream included), and of the
//! message rules on bytes.

use std::io::{Read, Write};
use std::net::{TcpStream as StdTcp, UdpSocket as StdUdp};
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;

const WEB: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// Owns `web`, `db` (no address) and `many` (100 addresses); forwards the rest, by name, to the fake
/// upstream, a closed port, a socket that never answers, or nowhere.
struct Fake {
    upstream: SocketAddr,
    closed: SocketAddr,
    silent: SocketAddr,
    /// Each call's server, client and name.
    seen: Mutex<Vec<(Ipv4Addr, Ipv4Addr, String)>>,
}

impl Names for Fake {
    fn answer(&self, server: Ipv4Addr, client: Ipv4Addr, name: &str) -> Answer {
        lock(&self.seen).push((server, client, name.to_string()));
        match name {
            "web" => Answer::Ours(vec![WEB]),
            "db" => Answer::Ours(vec![]),
            "many" => Answer::Ours((0..100).map(|i| Ipv4Addr::new(10, 1, 1, i)).collect()),
            "closed.test" => Answer::Forward(vec![self.closed]),
            "silent.test" => Answer::Forward(vec![self.silent]),
            "fallback.test" => Answer::Forward(vec![self.closed, self.upstream]),
            "nowhere.test" => Answer::Forward(vec![]),
            _ => Answer::Forward(vec![self.upstream]),
        }
    }
}

struct Setup {
    servers: DnsServers,
    names: Arc<Fake>,
    silent_upstream: StdUdp,
    _rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = rt.block_on(fake_upstream());
    let closed = StdUdp::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let silent = StdUdp::bind("127.0.0.1:0").unwrap();
    let names = Arc::new(Fake { upstream, closed, silent: silent.local_addr().unwrap(), seen: Mutex::new(Vec::new()) });
    let servers = DnsServers::new(rt.handle().clone(), Arc::clone(&names) as Arc<dyn Names>);
    Setup { servers, names, silent_upstream: silent, _rt: rt }
}

fn serve(s: &Setup, ip: [u8; 4], allowed: &str) -> SocketAddrV4 {
    s.servers.serve(SocketAddrV4::new(ip.into(), 0), allowed.parse().unwrap()).unwrap()
}

/// A resolver on 127.0.0.1 that knows `upstream.test` (192.0.2.7, TTL 60) and answers NXDOMAIN to the
/// rest; to `tricky.test` it first sends a reply with the wrong ID.
async fn fake_upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut reply = Message::new();
            reply.set_id(query.id()).set_message_type(MessageType::Response).set_recursion_available(true);
            reply.add_queries(query.queries().iter().cloned());
            let name = query.queries().first().map(|q| q.name().to_ascii()).unwrap_or_default();
            if name == "upstream.test." {
                reply.add_answer(Record::from_rdata(
                    Name::from_ascii(&name).unwrap(),
                    60,
                    RData::A(A(UPSTREAM_ANSWER)),
                ));
            } else {
                reply.set_response_code(ResponseCode::NXDomain);
            }
            if name == "tricky.test." {
                let mut wrong = reply.clone();
                wrong.set_id(query.id().wrapping_add(1)).set_response_code(ResponseCode::Refused);
                let _ = socket.send_to(&wrong.to_vec().unwrap(), from).await;
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    addr
}

fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// The raw reply to `packet` sent from `from`, or None within `wait`.
fn exchange(server: SocketAddrV4, from: Ipv4Addr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = StdUdp::bind((from, 0)).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// How long a test waits for an answer that must come (long: a loaded machine), and for one that must not.
const ANSWERED: Duration = Duration::from_secs(2);
const UNANSWERED: Duration = Duration::from_millis(300);

fn ask_from(server: SocketAddrV4, from: Ipv4Addr, name: &str, qtype: RecordType, wait: Duration) -> Option<Message> {
    let reply = exchange(server, from, &query_bytes(0x1234, name, qtype), wait)?;
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.id(), 0x1234, "{name}");
    assert_eq!(m.message_type(), MessageType::Response);
    Some(m)
}

fn ask(server: SocketAddrV4, name: &str, qtype: RecordType) -> Message {
    ask_from(server, Ipv4Addr::LOCALHOST, name, qtype, ANSWERED).unwrap_or_else(|| panic!("no answer for {name}"))
}

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    m.answers().iter().filter_map(|r| if let RData::A(a) = r.data() { Some(a.0) } else { None }).collect()
}

#[test]
fn our_names_are_answered_with_ttl_0_and_aa() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    let m = ask(server, "web", RecordType::A);
    assert_eq!((m.response_code(), addresses(&m)), (ResponseCode::NoError, vec![WEB]));
    assert!(m.authoritative() && m.recursion_available() && m.recursion_desired() && !m.truncated());
    assert_eq!(m.answers()[0].ttl(), 0);
    assert_eq!(m.queries()[0].name().to_ascii(), "web.", "the question as it came");
    // The name exists without an IPv6 address: NOERROR and nothing (not NXDOMAIN, which would end the
    // A lookup sent beside it).
    let m = ask(server, "web", RecordType::AAAA);
    assert_eq!((m.response_code(), m.answers().len(), m.authoritative()), (ResponseCode::NoError, 0, true));
    let m = ask(server, "db", RecordType::A);
    assert_eq!((m.response_code(), m.answers().len(), m.authoritative()), (ResponseCode::NXDomain, 0, true));
    // The engine sees the name lowercased, without the root's dot.
    let m = ask(server, "WeB.", RecordType::A);
    assert_eq!(addresses(&m), vec![WEB]);
    assert_eq!(m.queries()[0].name().to_ascii(), "WeB.");
    assert_eq!(lock(&s.names.seen).last().map(|(_, _, n)| n.as_str()), Some("web"));
    assert!(!lock(&s.names.seen).iter().any(|(_, _, n)| n.contains(['W', 'B', '.'])), "{:?}", lock(&s.names.seen));
    // 100 addresses do not fit 512 bytes: as many as do, and TC.
    let reply = exchange(server, Ipv4Addr::LOCALHOST, &query_bytes(7, "many", RecordType::A), ANSWERED);
    let reply = reply.unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert!(reply.len() <= 512 && m.truncated(), "{} bytes", reply.len());
    assert!(addresses(&m).len() > 20 && addresses(&m).len() < 100, "{}", addresses(&m).len());
}

#[test]
fn other_names_are_relayed_from_the_upstream() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    let m = ask(server, "upstream.test", RecordType::A);
    assert_eq!((m.response_code(), addresses(&m)), (ResponseCode::NoError, vec![UPSTREAM_ANSWER]));
    assert_eq!(m.answers()[0].ttl(), 60, "relayed as it came");
    assert!(!m.authoritative());
    let m = ask(server, "elsewhere.test", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    // A reply with another ID is not relayed; the right one after it is.
    let m = ask(server, "tricky.test", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    // The first upstream refuses (a closed port): the second answers.
    let m = ask(server, "fallback.test", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    // The relayed bytes are the upstream's, the client's ID among them.
    let query = query_bytes(0xbeef, "upstream.test", RecordType::A);
    let reply = exchange(server, Ipv4Addr::LOCALHOST, &query, ANSWERED).unwrap();
    assert_eq!(&reply[..2], &[0xbe, 0xef]);
}

#[test]
fn a_dead_upstream_gives_servfail_and_does_not_hold_up_our_names() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    let t0 = Instant::now();
    assert_eq!(ask(server, "closed.test", RecordType::A).response_code(), ResponseCode::ServFail);
    assert_eq!(ask(server, "nowhere.test", RecordType::A).response_code(), ResponseCode::ServFail);
    assert!(t0.elapsed() < Duration::from_millis(1500), "{:?}", t0.elapsed());
    // An upstream that never answers: SERVFAIL after its 2 s, and our names answered meanwhile.
    let silent = StdUdp::bind("127.0.0.1:0").unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let t0 = Instant::now();
    silent.send_to(&query_bytes(9, "silent.test", RecordType::A), server).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(addresses(&ask(server, "web", RecordType::A)), vec![WEB]);
    assert!(t0.elapsed() < Duration::from_millis(1500));
    let mut buf = [0u8; 512];
    let (n, _) = silent.recv_from(&mut buf).expect("SERVFAIL, not a hang");
    let waited = t0.elapsed();
    assert_eq!(Message::from_vec(&buf[..n]).unwrap().response_code(), ResponseCode::ServFail);
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn clients_outside_allowed_get_nothing() {
    let s = setup();
    // 127.0.0.0/30: 127.0.0.1 is inside, 127.0.0.9 outside.
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/30");
    let inside = Ipv4Addr::new(127, 0, 0, 2);
    assert!(ask_from(server, inside, "web", RecordType::A, ANSWERED).is_some(), "positive control");
    assert_eq!(*lock(&s.names.seen), [(*server.ip(), inside, "web".to_string())], "the engine is told who asked whom");
    let outside = Ipv4Addr::new(127, 0, 0, 9);
    assert!(ask_from(server, outside, "web", RecordType::A, UNANSWERED).is_none());
    assert!(ask_from(server, outside, "upstream.test", RecordType::A, UNANSWERED).is_none());
    let other = serve(&s, [127, 0, 0, 2], "10.0.0.0/24");
    assert!(ask_from(other, Ipv4Addr::LOCALHOST, "web", RecordType::A, UNANSWERED).is_none());
    // Over TCP the connection is closed unanswered.
    let mut tcp = StdTcp::connect(other).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let q = query_bytes(1, "web", RecordType::A);
    let _ = tcp.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat());
    let mut buf = [0u8; 64];
    assert!(matches!(tcp.read(&mut buf), Ok(0) | Err(_)), "no answer");
    assert!(lock(&s.names.seen).len() == 1, "the engine was asked only for the client inside");
}

#[test]
fn garbage_and_responses_get_no_crash() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    let wait = UNANSWERED;
    let lo = Ipv4Addr::LOCALHOST;
    for junk in [&[][..], &[1, 2, 3], &[0xff; 11]] {
        assert_eq!(exchange(server, lo, junk, wait), None, "{junk:?}");
    }
    // A response is never answered.
    let mut response = query_bytes(5, "web", RecordType::A);
    response[2] |= 0x80;
    assert_eq!(exchange(server, lo, &response, wait), None);
    // A header and a bad body: FORMERR.
    let mut bad = query_bytes(6, "web", RecordType::A);
    bad[5] = 40; // 40 questions, one there.
    let m = Message::from_vec(&exchange(server, lo, &bad, ANSWERED).unwrap()).unwrap();
    assert_eq!((m.id(), m.response_code()), (6, ResponseCode::FormErr));
    // Pseudo-random packets, some with a query's header: no crash, whatever is sent back.
    let mut x: u32 = 0x9e37_79b9;
    for len in 0..200usize {
        let mut p: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        if len > 12 && len % 2 == 0 {
            p[2] = 0x01;
            p[4..6].copy_from_slice(&[0, 1]);
        }
        let socket = StdUdp::bind((lo, 0)).unwrap();
        socket.send_to(&p, server).unwrap();
    }
    // Another opcode: NOTIMP; another class: NOTIMP.
    let mut status = Message::from_vec(&query_bytes(8, "web", RecordType::A)).unwrap();
    status.set_op_code(OpCode::Status);
    let m = Message::from_vec(&exchange(server, lo, &status.to_vec().unwrap(), ANSWERED).unwrap()).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NotImp);
    let mut chaos = Message::new();
    chaos
        .set_id(9)
        .add_query(Query::query(Name::from_ascii("web").unwrap(), RecordType::A).set_query_class(DNSClass::CH).clone());
    let m = Message::from_vec(&exchange(server, lo, &chaos.to_vec().unwrap(), ANSWERED).unwrap()).unwrap();
    assert_eq!(m.response_code(), ResponseCode::NotImp);
    // Still answering.
    assert_eq!(addresses(&ask(server, "web", RecordType::A)), vec![WEB]);
}

#[test]
fn stop_closes_the_sockets_and_serve_again_works() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    assert_eq!(serve(&s, [127, 0, 0, 1], "127.0.0.0/8"), server, "idempotent");
    assert_eq!(s.servers.served(), vec![server]);
    // A TCP connection open across the stop.
    let _open = StdTcp::connect(server).unwrap();
    s.servers.stop(*server.ip());
    s.servers.stop(*server.ip());
    s.servers.stop(Ipv4Addr::new(127, 0, 0, 3));
    assert!(s.servers.served().is_empty());
    // The very port is free at once, for anyone.
    drop(StdUdp::bind(server).expect("the UDP socket is closed"));
    drop(std::net::TcpListener::bind(server).expect("the TCP listener is closed"));
    let again = s.servers.serve(server, "127.0.0.0/8".parse().unwrap()).unwrap();
    assert_eq!(again, server);
    assert_eq!(addresses(&ask(server, "web", RecordType::A)), vec![WEB]);
}

#[test]
fn tcp_answers_ours_and_relays_the_rest() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    let mut tcp = StdTcp::connect(server).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut exchange = |name: &str| {
        let q = query_bytes(0x4242, name, RecordType::A);
        tcp.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat()).unwrap();
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tcp.read_exact(&mut reply).unwrap();
        Message::from_vec(&reply).unwrap()
    };
    assert_eq!(addresses(&exchange("web")), vec![WEB]);
    assert_eq!(addresses(&exchange("upstream.test")), vec![UPSTREAM_ANSWER]);
    // Over TCP all 100 fit.
    let m = exchange("many");
    assert_eq!((addresses(&m).len(), m.truncated()), (100, false));
}

#[test]
fn names_are_keyed_lowercase_and_escaped() {
    let key = |s: &str| message::key(&Name::from_ascii(s).unwrap());
    assert_eq!(key("WeB."), "web");
    assert_eq!(key("a.B.c"), "a.b.c");
    assert_eq!(key("."), "");
    let odd = Name::from_labels(vec![&b"we.b"[..], &b"x\x00"[..]]).unwrap();
    assert_eq!(message::key(&odd), "we\\046b.x\\000");
    // Responses and short packets: nothing.
    assert_eq!(message::handle(&[0x80; 12], 512, |_| Answer::Ours(vec![])), Action::Drop);
    assert_eq!(message::servfail(&[1, 2]), Action::Drop);
}

#[test]
fn forwards_in_flight_are_bounded() {
    let s = setup();
    let server = serve(&s, [127, 0, 0, 1], "127.0.0.0/8");
    let client = StdUdp::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(ANSWERED)).unwrap();
    s.silent_upstream.set_read_timeout(Some(UNANSWERED)).unwrap();
    let mut buf = [0u8; 512];
    // Fill every slot, in batches each seen arriving at the silent upstream (so no query is lost to a
    // full socket buffer on a loaded machine), then one more: it finds none left and gets SERVFAIL without
    // being forwarded. A run is conclusive when all slots were seen taken and that answer comes before any
    // forward timed out (which would free a slot): at most three runs, each after the last one's forwards
    // timed out and their answers were drained.
    let upstream_got = |buf: &mut [u8]| -> Option<u16> {
        let (n, _) = s.silent_upstream.recv_from(buf).ok()?;
        Some(Message::from_vec(&buf[..n]).unwrap().id())
    };
    let conclusive = (0..3u16).any(|run| {
        let base = run * 1000;
        let drain = |buf: &mut [u8]| {
            std::thread::sleep(UPSTREAM_TIMEOUT + UNANSWERED);
            while client.recv_from(buf).is_ok() {}
            while s.silent_upstream.recv_from(buf).is_ok() {}
        };
        let mut forwarded = 0;
        for batch in (0..MAX_FORWARDS as u16).collect::<Vec<_>>().chunks(32) {
            for id in batch {
                client.send_to(&query_bytes(base + id, "silent.test", RecordType::A), server).unwrap();
            }
            for _ in batch {
                match upstream_got(&mut buf) {
                    Some(_) => forwarded += 1,
                    None => break,
                }
            }
        }
        if forwarded != MAX_FORWARDS {
            drain(&mut buf);
            return false;
        }
        let one_more = base + 999;
        client.send_to(&query_bytes(one_more, "silent.test", RecordType::A), server).unwrap();
        let first = client.recv_from(&mut buf).ok().map(|(n, _)| Message::from_vec(&buf[..n]).unwrap());
        let Some(m) = first.filter(|m| m.id() == one_more) else {
            drain(&mut buf);
            return false;
        };
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        // Never forwarded: the silent upstream got nothing after the others.
        assert_eq!(upstream_got(&mut buf), None, "forwarded beyond the bound");
        true
    });
    assert!(conclusive, "three runs in a row had a query lost or a forward time out before the bound was hit");
    // Our own names need no forward.
    assert_eq!(addresses(&ask(server, "web", RecordType::A)), vec![WEB]);
}
