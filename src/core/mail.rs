//! Customer email → ticket timeline entries.
//!
//! Pure functions: no I/O, no clock, no network. Every function accepts
//! untrusted input and never panics on it.
//!
//! # How raw mail is parsed (and why)
//! `mail-parser` 0.11 keeps multipart nesting flat (iterative), but it builds
//! nested `message/rfc822` parts as a tree that is dropped recursively, and for
//! base64/quoted-printable encoded `message/rfc822` parts it recurses over that
//! tree while parsing: a hundred levels already overflow a 256 KiB stack.
//! So [`parse_raw`] runs mail-parser with transfer-encoding handling switched
//! off (it then never recurses), decodes the leaf parts it needs itself with
//! mail-parser's own decoders, turns encoded attached messages into plain leaf
//! parts (parsed separately, one level deep only), and drops parse trees
//! iteratively. Deep nesting of any kind therefore costs time linear in the
//! input and constant stack.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use mail_parser::parsers::MessageStream;
use mail_parser::{
    Addr, GetHeader, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders,
    PartType,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Raw input larger than this many bytes is refused with [`MailError::TooLarge`].
pub const MAX_RAW: usize = 10 * 1024 * 1024;
/// Maximum length of [`Mail::body`] in characters, the trailing "…" included.
pub const MAX_BODY: usize = 20_000;

const MAX_SUBJECT: usize = 500;
const MAX_NAME: usize = 200;
const MAX_EMAIL: usize = 320;
const MAX_ATTACHMENTS: usize = 50;
const MAX_ATTACHMENT_NAME: usize = 200;
const MAX_RECIPIENTS: usize = 100;
const MAX_IDS: usize = 100;
const MAX_ID_LEN: usize = 998;
const MAX_THREAD_ID: usize = 1024;
/// Body parts (text/plain or text/html leaves) joined into one body.
const MAX_BODY_PARTS: usize = 16;
/// Text kept before quote trimming; the body is cut to MAX_BODY later anyway.
const MAX_SCAN_TEXT: usize = 256 * 1024;
/// HTML longer than this is cut before conversion.
const MAX_HTML: usize = 1024 * 1024;
/// HTML nested deeper than this is converted by a simple tag stripper
/// (html2text is quadratic in nesting depth).
const MAX_HTML_DEPTH: usize = 200;
const HTML_WIDTH: usize = 100;
/// Attached messages examined for an original sender.
const MAX_ATTACHED_TRIES: usize = 5;
/// Rounds of "neutralize encoded message parts and parse again".
const MAX_PATCH_ROUNDS: usize = 4;

/// A mailbox address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Display name, if any (no CR/LF, at most 200 chars).
    pub name: Option<String>,
    /// The address, lower-cased.
    pub email: String,
}

/// One email as the desk keeps it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Mail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids without angle brackets.
    pub in_reply_to: Vec<String>,
    /// References ids without angle brackets.
    pub references: Vec<String>,
    /// Provider thread/conversation id (Graph conversationId; otherwise set by the caller).
    pub thread_id: Option<String>,
    /// Decoded subject on one line, trimmed, at most 500 chars.
    pub subject: String,
    /// Sender.
    pub from: Option<Address>,
    /// To recipients (at most 100).
    pub to: Vec<Address>,
    /// Date header (raw mail) or received/sent time (Graph), in UTC.
    #[serde(with = "date_serde")]
    pub date: Option<DateTime<Utc>>,
    /// Plain text, quoted history trimmed, at most [`MAX_BODY`] chars.
    pub body: String,
    /// Attachment file names (at most 50, each at most 200 chars).
    pub attachments: Vec<String>,
    /// For a forwarded message: the original sender (from the forwarded header block or an attached message/rfc822).
    pub original_from: Option<Address>,
}

/// Why raw mail was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// The raw input has this many bytes, more than [`MAX_RAW`].
    TooLarge(usize),
    /// No message header (From, To, Subject, Date or Message-ID) could be parsed.
    Unparseable,
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::TooLarge(n) => {
                write!(f, "email too large: {n} bytes (limit {MAX_RAW})")
            }
            MailError::Unparseable => f.write_str("not a parseable email"),
        }
    }
}

impl std::error::Error for MailError {}

mod date_serde {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.to_rfc3339_opts(SecondsFormat::Secs, true)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(serde::de::Error::custom),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw RFC 822 parsing
// ---------------------------------------------------------------------------

/// Parses raw RFC 822 bytes into a [`Mail`].
///
/// Input over [`MAX_RAW`] bytes gives `TooLarge`. Input in which no From, To,
/// Subject, Date or Message-ID header can be found (garbage, empty input)
/// gives `Unparseable`. Anything else gives a `Mail`, possibly with empty
/// fields. Attached messages are looked at one level deep only.
pub fn parse_raw(raw: &[u8]) -> Result<Mail, MailError> {
    if raw.len() > MAX_RAW {
        return Err(MailError::TooLarge(raw.len()));
    }
    // mail-parser has debug assertions; any panic inside counts as unparseable.
    catch_unwind(AssertUnwindSafe(|| parse_level(raw, 0)))
        .ok()
        .flatten()
        .ok_or(MailError::Unparseable)
}

fn neutral_parser() -> MessageParser {
    // Content-Transfer-Encoding is parsed as a content type, so mail-parser
    // never sees it as "base64"/"quoted-printable" text: it decodes nothing and
    // never recurses into encoded message parts. Leaves are decoded by us.
    MessageParser::new()
        .with_minimal_headers()
        .with_message_ids()
        .header_text(HeaderName::Subject)
        .header_content_type(HeaderName::ContentTransferEncoding)
}

fn parse_level(raw: &[u8], level: usize) -> Option<Mail> {
    let parser = neutral_parser();
    let mut owned: Option<Vec<u8>> = None;
    for round in 0..=MAX_PATCH_ROUNDS {
        let buf: &[u8] = owned.as_deref().unwrap_or(raw);
        let msg = parser.parse(buf)?;
        let patches = if round < MAX_PATCH_ROUNDS {
            encoded_message_patches(&msg)
        } else {
            Vec::new()
        };
        if patches.is_empty() {
            let out = extract(&msg, buf, level);
            drop_iteratively(msg);
            return out;
        }
        drop_iteratively(msg);
        let v = owned.get_or_insert_with(|| raw.to_vec());
        for (start, end) in patches {
            if let Some(slice) = v.get_mut(start..end) {
                neutralize(slice);
            }
        }
    }
    None
}

/// Drops a parse tree without recursion (nested messages can be deep).
fn drop_iteratively(msg: Message<'_>) {
    let mut stack = vec![msg];
    while let Some(mut m) = stack.pop() {
        for part in m.parts.iter_mut() {
            if matches!(part.body, PartType::Message(_))
                && let PartType::Message(inner) = std::mem::take(&mut part.body)
            {
                stack.push(inner);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cte {
    Identity,
    Base64,
    QuotedPrintable,
}

fn part_cte(part: &MessagePart<'_>) -> Cte {
    match part
        .headers
        .header_value(&HeaderName::ContentTransferEncoding)
    {
        Some(HeaderValue::ContentType(ct)) => cte_from_str(ct.ctype()),
        Some(HeaderValue::Text(t)) => cte_from_str(t),
        _ => Cte::Identity,
    }
}

fn cte_from_str(s: &str) -> Cte {
    let s = s.trim();
    if s.eq_ignore_ascii_case("base64") {
        Cte::Base64
    } else if s.eq_ignore_ascii_case("quoted-printable") {
        Cte::QuotedPrintable
    } else {
        Cte::Identity
    }
}

fn is_message_type(part: &MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("message")
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
            })
    })
}

/// Content-Type value ranges of message parts that mail-parser would decode
/// and recurse into (or that we could not parse inline), and of digests
/// whose header-less children are encoded. Walks the whole tree iteratively.
fn encoded_message_patches(msg: &Message<'_>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![msg];
    while let Some(m) = stack.pop() {
        for part in &m.parts {
            let is_msg = is_message_type(part);
            let needs_patch = if is_msg {
                part_cte(part) != Cte::Identity || !matches!(part.body, PartType::Message(_))
            } else if part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("multipart")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
            }) {
                part.sub_parts().unwrap_or_default().iter().any(|id| {
                    m.parts.get(*id as usize).is_some_and(|child| {
                        child.content_type().is_none() && part_cte(child) != Cte::Identity
                    })
                })
            } else {
                false
            };
            if needs_patch {
                for h in &part.headers {
                    if h.name == HeaderName::ContentType {
                        out.push((h.offset_start as usize, h.offset_end as usize));
                    }
                }
            }
            if let PartType::Message(inner) = &part.body {
                stack.push(inner);
            }
        }
    }
    out
}

/// Breaks every "message" and "digest" token in a Content-Type value, so the
/// part becomes an opaque leaf ("xessage/rfc822", "multipart/xigest").
fn neutralize(value: &mut [u8]) {
    for word in [&b"message"[..], &b"digest"[..]] {
        let mut i = 0;
        while i + word.len() <= value.len() {
            let hit = value
                .get(i..i + word.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(word));
            if hit {
                if let Some(b) = value.get_mut(i) {
                    *b = b'x';
                }
                i += word.len();
            } else {
                i += 1;
            }
        }
    }
}

fn root_headers<'a, 'x>(msg: &'a Message<'x>) -> Option<&'a Vec<mail_parser::Header<'x>>> {
    msg.parts.first().map(|p| &p.headers)
}

fn extract(msg: &Message<'_>, buf: &[u8], level: usize) -> Option<Mail> {
    let headers = root_headers(msg)?;
    let has_any = headers.iter().any(|h| {
        matches!(
            h.name,
            HeaderName::From
                | HeaderName::To
                | HeaderName::Subject
                | HeaderName::Date
                | HeaderName::MessageId
        )
    });
    if !has_any {
        return None;
    }

    let mut mail = Mail {
        message_id: headers
            .header_value(&HeaderName::MessageId)
            .and_then(first_text)
            .and_then(clean_id),
        in_reply_to: headers
            .header_value(&HeaderName::InReplyTo)
            .map(id_list)
            .unwrap_or_default(),
        references: headers
            .header_value(&HeaderName::References)
            .map(id_list)
            .unwrap_or_default(),
        subject: headers
            .header_value(&HeaderName::Subject)
            .and_then(first_text)
            .map(clean_subject)
            .unwrap_or_default(),
        from: headers
            .header_value(&HeaderName::From)
            .and_then(|v| match v {
                HeaderValue::Address(a) => a.iter().find_map(addr_from_parser),
                _ => None,
            }),
        to: match headers.header_value(&HeaderName::To) {
            Some(HeaderValue::Address(a)) => a
                .iter()
                .filter_map(addr_from_parser)
                .take(MAX_RECIPIENTS)
                .collect(),
            _ => Vec::new(),
        },
        date: match headers.header_value(&HeaderName::Date) {
            Some(HeaderValue::DateTime(d)) if d.is_valid() => {
                DateTime::from_timestamp(d.to_timestamp(), 0)
            }
            _ => None,
        },
        ..Mail::default()
    };

    // Body: text/plain leaves (mail-parser lists them first for
    // multipart/alternative), else HTML converted.
    let mut text = String::new();
    for id in msg.text_body.iter().take(MAX_BODY_PARTS) {
        let Some(part) = msg.parts.get(*id as usize) else {
            continue;
        };
        let piece = match &part.body {
            PartType::Text(_) => part_text(part, buf),
            PartType::Html(_) => part_text(part, buf).map(|h| html_to_text(&h)),
            _ => None,
        };
        if let Some(piece) = piece {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(piece);
            if text.len() > MAX_SCAN_TEXT {
                break;
            }
        }
    }

    // Attachments and the first attached message (not for bounce reports).
    let is_report = msg.parts.first().is_some_and(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
    });
    let mut attached: Option<Mail> = None;
    let mut tries = 0;
    for id in &msg.attachments {
        let Some(part) = msg.parts.get(*id as usize) else {
            continue;
        };
        let nested = if level == 0 && attached.is_none() && !is_report && tries < MAX_ATTACHED_TRIES
        {
            tries += 1;
            attached_message(part, buf)
        } else {
            None
        };
        let name = part
            .attachment_name()
            .map(clean_line)
            .filter(|n| !n.is_empty())
            .or_else(|| {
                let is_msg = matches!(part.body, PartType::Message(_)) || is_patched_message(part);
                is_msg.then(|| {
                    let subject = match &part.body {
                        PartType::Message(m) => root_headers(m)
                            .and_then(|h| h.header_value(&HeaderName::Subject))
                            .and_then(first_text)
                            .map(clean_line),
                        _ => nested.as_ref().map(|p| p.subject.clone()),
                    };
                    match subject.filter(|s| !s.is_empty()) {
                        Some(s) => format!("{}.eml", truncate_chars(&s, MAX_ATTACHMENT_NAME - 4)),
                        None => "message.eml".to_string(),
                    }
                })
            });
        if let Some(name) = name
            && mail.attachments.len() < MAX_ATTACHMENTS
        {
            mail.attachments
                .push(truncate_chars(&name, MAX_ATTACHMENT_NAME).to_string());
        }
        if nested.as_ref().is_some_and(|n| n.from.is_some()) {
            attached = nested;
        }
    }

    let (body, found) = finish_body(&text, &mail.subject);
    mail.body = body;
    mail.original_from = found;
    if let Some(att) = attached {
        // An attached message is the strongest evidence of the original sender.
        mail.original_from = att.from.clone();
        if mail.body.trim().is_empty() {
            mail.body = att.body;
        }
    }
    Some(mail)
}

fn is_patched_message(part: &MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("xessage")
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
            })
    })
}

/// An attached message: parsed inline by mail-parser, or neutralized (was
/// encoded) and parsed here, one level deep.
fn attached_message(part: &MessagePart<'_>, buf: &[u8]) -> Option<Mail> {
    match &part.body {
        PartType::Message(m) => {
            let buf_m: &[u8] = buf;
            extract(m, buf_m, 1)
        }
        _ if is_patched_message(part) => {
            let raw = buf.get(part.offset_body as usize..part.offset_end as usize)?;
            let bytes = decode_cte(raw, part_cte(part))?;
            parse_level(&bytes, 1)
        }
        _ => None,
    }
}

/// Decoded text of a text leaf (HTML still as HTML).
fn part_text(part: &MessagePart<'_>, buf: &[u8]) -> Option<String> {
    let parsed = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t,
        _ => return None,
    };
    let cte = part_cte(part);
    if cte == Cte::Identity {
        return Some(parsed.to_string());
    }
    let decoded = buf
        .get(part.offset_body as usize..part.offset_end as usize)
        .and_then(|raw| decode_cte(raw, cte));
    let Some(bytes) = decoded else {
        // Broken encoding: keep what mail-parser saw, as mail-parser itself does.
        return Some(parsed.to_string());
    };
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    Some(
        match charset
            .and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes()))
        {
            Some(decoder) => decoder(&bytes),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        },
    )
}

fn decode_cte(raw: &[u8], cte: Cte) -> Option<Vec<u8>> {
    let mut stream = MessageStream::new(raw);
    let (end, bytes) = match cte {
        Cte::Identity => return Some(raw.to_vec()),
        Cte::Base64 => stream.decode_base64_mime(b""),
        Cte::QuotedPrintable => stream.decode_quoted_printable_mime(b""),
    };
    (end != usize::MAX).then(|| bytes.into_owned())
}

fn first_text<'a>(v: &'a HeaderValue<'_>) -> Option<&'a str> {
    match v {
        HeaderValue::Text(t) => Some(t),
        HeaderValue::TextList(l) => l.first().map(|s| s.as_ref()),
        _ => None,
    }
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    let items: Vec<&str> = match v {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|s| s.as_ref()).collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(clean_id)
        .take(MAX_IDS)
        .collect()
}

fn addr_from_parser(a: &Addr<'_>) -> Option<Address> {
    make_address(a.name.as_deref(), a.address.as_deref()?)
}

// ---------------------------------------------------------------------------
// Cleaning helpers
// ---------------------------------------------------------------------------

/// The first `max` chars of `s` (cut at a char boundary).
fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// One line: control chars (CR, LF, …) become spaces, runs of whitespace collapse.
fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4096));
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

fn clean_subject(s: &str) -> String {
    truncate_chars(&clean_line(truncate_chars(s, 4 * MAX_SUBJECT)), MAX_SUBJECT).to_string()
}

fn clean_id(s: &str) -> Option<String> {
    let s = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if s.is_empty()
        || s.len() > MAX_ID_LEN
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(s.to_string())
}

fn make_address(name: Option<&str>, email: &str) -> Option<Address> {
    let email = email
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if email.is_empty()
        || email.len() > MAX_EMAIL
        || email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    let email = email.to_lowercase();
    let name = name
        .map(|n| {
            let n = clean_line(n);
            let n =
                n.trim_matches(|c: char| c == '"' || c == '\'' || c == '*' || c.is_whitespace());
            truncate_chars(n, MAX_NAME).to_string()
        })
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case(&email));
    Some(Address { name, email })
}

// ---------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------

/// HTML → plain text (html2text, width 100); a simple tag stripper for
/// pathological input (too deep, conversion error or panic).
fn html_to_text(html: &str) -> String {
    let html = truncate_bytes(html, MAX_HTML);
    if html_depth(html) <= MAX_HTML_DEPTH {
        let converted = catch_unwind(AssertUnwindSafe(|| {
            html2text::config::with_decorator(DeskDecorator)
                .allow_width_overflow()
                .string_from_read(html.as_bytes(), HTML_WIDTH)
        }));
        if let Ok(Ok(text)) = converted {
            return text;
        }
    }
    strip_tags(html)
}

/// Plain text without markup: no link brackets, no emphasis marks, no
/// images; quotes keep their "> " prefix and lists their bullets.
#[derive(Clone, Debug)]
struct DeskDecorator;

impl html2text::render::TextDecorator for DeskDecorator {
    type Annotation = ();
    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, _title: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }
    fn quote_prefix(&self) -> String {
        "> ".to_string()
    }
    fn unordered_item_prefix(&self) -> String {
        "* ".to_string()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        DeskDecorator
    }
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

const VOID_TAGS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "td", "th", "tr", "dt", "dd", "option", "tbody", "thead", "tfoot",
    "colgroup",
];

/// Rough element nesting depth (void and auto-closed elements ignored).
fn html_depth(html: &str) -> usize {
    let b = html.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'<')) {
        i += off + 1;
        match b.get(i) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(c) if c.is_ascii_alphabetic() => {
                let name_end = b
                    .get(i..)
                    .and_then(|r| r.iter().position(|c| !c.is_ascii_alphanumeric()))
                    .map_or(b.len(), |p| i + p);
                let name = html
                    .get(i..name_end)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let tag_end = b
                    .get(i..b.len().min(i + 512))
                    .and_then(|r| r.iter().position(|&c| c == b'>'))
                    .map(|p| i + p);
                let self_closing = tag_end.is_some_and(|e| e > 0 && b.get(e - 1) == Some(&b'/'));
                if !self_closing && !VOID_TAGS.contains(&name.as_str()) {
                    depth += 1;
                    max = max.max(depth);
                }
            }
            _ => {}
        }
    }
    max
}

/// Minimal HTML → text: drops tags, script/style, decodes common entities.
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(rest.get(..lt).unwrap_or_default());
        let after = rest.get(lt..).unwrap_or_default();
        let Some(gt) = after.find('>').map(|g| g + 1) else {
            // No tag end anywhere: the rest is text.
            rest = after;
            break;
        };
        let tag = after.get(..gt).unwrap_or_default().to_ascii_lowercase();
        rest = after.get(gt..).unwrap_or_default();
        for skip in ["script", "style", "head"] {
            if tag.starts_with(&format!("<{skip}")) {
                let close = format!("</{skip}");
                rest = match find_ascii_ci(rest, &close) {
                    Some(p) => rest.get(p..).unwrap_or_default(),
                    None => "",
                };
            }
        }
        let name: String = tag
            .trim_start_matches(['<', '/'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if matches!(
            name.as_str(),
            "br" | "p"
                | "div"
                | "tr"
                | "li"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "blockquote"
                | "table"
                | "hr"
        ) {
            out.push('\n');
        }
    }
    out.push_str(rest);
    decode_entities(&out)
}

/// Byte offset of the first ASCII-case-insensitive match of `needle`.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp..).unwrap_or_default();
        let semi = after.get(..12.min(after.len())).and_then(|w| w.find(';'));
        let decoded = semi.and_then(|semi| {
            let ent = after.get(1..semi)?;
            let c = match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = after.get(len..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// Body: forwarded blocks and quoted history
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum HeaderKey {
    From,
    Sent,
    To,
    Cc,
    Subject,
    Other,
}

fn header_key(key: &str) -> Option<HeaderKey> {
    let k = key.trim().to_lowercase();
    let k = k.as_str();
    Some(match k {
        "from" | "von" | "de" | "da" | "van" | "från" | "fra" | "od" | "от" | "kimden"
        | "lähettäjä" | "feladó" => HeaderKey::From,
        "sent"
        | "date"
        | "gesendet"
        | "datum"
        | "envoyé"
        | "enviado"
        | "enviada"
        | "inviato"
        | "verzonden"
        | "skickat"
        | "sendt"
        | "wysłano"
        | "fecha"
        | "data"
        | "отправлено"
        | "lähetetty"
        | "elküldve" => HeaderKey::Sent,
        "to" | "an" | "à" | "a" | "para" | "aan" | "till" | "til" | "do" | "кому"
        | "vastaanottaja" | "címzett" => HeaderKey::To,
        "cc" | "kopie" | "copie" | "copia" | "kopia" | "копия" => HeaderKey::Cc,
        "subject" | "betreff" | "objet" | "asunto" | "oggetto" | "onderwerp" | "ämne" | "emne"
        | "temat" | "assunto" | "тема" | "aihe" | "tárgy" => HeaderKey::Subject,
        "reply-to" | "importance" | "bcc" | "wichtigkeit" => HeaderKey::Other,
        _ => return None,
    })
}

/// `Key: value` in a quoted header block ("*From:* x" decorations allowed).
fn parse_header_line(line: &str) -> Option<(HeaderKey, &str)> {
    let t = line.trim().trim_start_matches('*');
    let colon = t.find(':')?;
    if colon > 30 {
        return None;
    }
    let key = t.get(..colon)?.trim_end_matches('*');
    let value = t.get(colon + 1..)?.trim().trim_start_matches('*').trim();
    Some((header_key(key)?, value))
}

fn is_forward_subject(subject: &str) -> bool {
    let mut s = subject.trim_start();
    // Skip leading tags such as "[#12]" or "[EXTERNAL]".
    while s.starts_with('[') {
        match s.find(']') {
            Some(p) => s = s.get(p + 1..).unwrap_or_default().trim_start(),
            None => break,
        }
    }
    let lower: String = s.chars().take(10).collect::<String>().to_lowercase();
    [
        "fwd:", "fw:", "fwd :", "fw :", "wg:", "tr:", "rv:", "enc:", "doorst:",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

fn is_reply_subject(subject: &str) -> bool {
    let lower: String = subject
        .trim_start()
        .chars()
        .take(8)
        .collect::<String>()
        .to_lowercase();
    [
        "re:", "re :", "aw:", "sv:", "antw:", "odp:", "ynt:", "res:", "r:",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

fn is_forward_marker(t: &str) -> bool {
    let core = t
        .trim_matches(|c: char| c == '-' || c.is_whitespace())
        .to_lowercase();
    let dashed = t.starts_with("--") && t.ends_with("--");
    const DASHED: &[&str] = &[
        "forwarded message",
        "mensaje reenviado",
        "message transféré",
        "weitergeleitete nachricht",
        "messaggio inoltrato",
        "doorgestuurd bericht",
        "mensagem encaminhada",
        "videresendt melding",
        "vidarebefordrat meddelande",
    ];
    const PLAIN: &[&str] = &[
        "begin forwarded message:",
        "anfang der weitergeleiteten nachricht:",
        "début du message réexpédié :",
        "début du message réexpédié:",
        "inicio del mensaje reenviado:",
    ];
    (dashed && DASHED.contains(&core.as_str())) || PLAIN.contains(&core.as_str())
}

fn is_original_message(t: &str) -> bool {
    let core = t
        .trim_matches(|c: char| c == '-' || c.is_whitespace())
        .to_lowercase();
    t.starts_with("---")
        && matches!(
            core.as_str(),
            "original message"
                | "ursprüngliche nachricht"
                | "message d'origine"
                | "mensaje original"
                | "messaggio originale"
                | "oorspronkelijk bericht"
                | "mensagem original"
        )
}

/// A separator line: underscores (Outlook text), box-drawing or dashes (an HTML <hr>).
fn is_rule(t: &str) -> bool {
    t.chars().count() >= 8 && t.chars().all(|c| matches!(c, '_' | '─' | '━' | '—' | '-'))
}

const ATTRIBUTION_PREFIXES: &[&str] = &[
    "On ", "Am ", "Le ", "El ", "Il ", "Op ", "Em ", "Den ", "W dniu ", "På ",
];
const ATTRIBUTION_SUFFIXES: &[&str] = &[
    "wrote:",
    "schrieb:",
    "a écrit :",
    "a écrit:",
    "escribió:",
    "ha scritto:",
    "schreef:",
    "geschreven:",
    "escreveu:",
    "skrev:",
    "napisał(a):",
    "napisał:",
];

fn ends_attribution(t: &str) -> bool {
    ATTRIBUTION_SUFFIXES.iter().any(|s| t.ends_with(s))
}

/// Length in lines (1 or 2) of an "On … wrote:" attribution starting at `i`.
fn attribution_at(lines: &[&str], i: usize) -> Option<usize> {
    let t = lines.get(i)?.trim();
    if t.chars().count() > 400 {
        return None;
    }
    if ATTRIBUTION_PREFIXES.iter().any(|p| t.starts_with(p)) {
        if ends_attribution(t) {
            return Some(1);
        }
        let next = lines.get(i + 1)?.trim();
        if !next.is_empty()
            && ends_attribution(next)
            && t.chars().count() + next.chars().count() <= 400
        {
            return Some(2);
        }
        return None;
    }
    // "jane@acme.example wrote:" directly followed by a quote.
    if t.contains('@') && ends_attribution(t) {
        let next = lines
            .get(i + 1..)?
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())?;
        if next.starts_with('>') {
            return Some(1);
        }
    }
    None
}

/// An Outlook-style header block (From + Sent/Date + To/Subject) starting at `i`.
fn outlook_block_at(lines: &[&str], i: usize) -> bool {
    if !matches!(
        lines.get(i).and_then(|l| parse_header_line(l)),
        Some((HeaderKey::From, _))
    ) {
        return false;
    }
    let (mut sent, mut other) = (false, false);
    for l in lines.iter().skip(i + 1).take(8) {
        if l.trim().is_empty() {
            break;
        }
        match parse_header_line(l) {
            Some((HeaderKey::Sent, _)) => sent = true,
            Some((HeaderKey::To | HeaderKey::Subject | HeaderKey::Cc, _)) => other = true,
            _ => {}
        }
    }
    sent && other
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MarkerKind {
    /// "---------- Forwarded message ---------" and the like: always a forward.
    Forward,
    /// Outlook header block, "-----Original Message-----", underline + From.
    HeaderBlock,
    /// "On … wrote:" (`usize` lines long).
    Attribution(usize),
    /// A `>` line after unquoted text.
    Quote,
}

#[derive(Clone, Copy, Debug)]
struct Marker {
    /// First line of the marker (cut point).
    line: usize,
    /// First line of a header block to read, if any.
    headers: usize,
    kind: MarkerKind,
}

fn next_nonblank(lines: &[&str], from: usize, max_skip: usize) -> Option<usize> {
    (from..lines.len().min(from + max_skip + 1))
        .find(|&j| lines.get(j).is_some_and(|l| !l.trim().is_empty()))
}

fn find_marker(lines: &[&str]) -> Option<Marker> {
    let mut seen_text = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if is_forward_marker(t) {
            return Some(Marker {
                line: i,
                headers: i + 1,
                kind: MarkerKind::Forward,
            });
        }
        if is_original_message(t) {
            return Some(Marker {
                line: i,
                headers: i + 1,
                kind: MarkerKind::HeaderBlock,
            });
        }
        if is_rule(t)
            && let Some(j) = next_nonblank(lines, i + 1, 2)
            && matches!(
                lines.get(j).and_then(|l| parse_header_line(l)),
                Some((HeaderKey::From, _))
            )
        {
            return Some(Marker {
                line: i,
                headers: j,
                kind: MarkerKind::HeaderBlock,
            });
        }
        if outlook_block_at(lines, i) {
            return Some(Marker {
                line: i,
                headers: i,
                kind: MarkerKind::HeaderBlock,
            });
        }
        if let Some(n) = attribution_at(lines, i) {
            return Some(Marker {
                line: i,
                headers: i + n,
                kind: MarkerKind::Attribution(n),
            });
        }
        if t.starts_with('>') {
            if seen_text {
                return Some(Marker {
                    line: i,
                    headers: i,
                    kind: MarkerKind::Quote,
                });
            }
        } else {
            seen_text = true;
        }
    }
    None
}

/// Reads a quoted header block; returns (From value, first line after the block).
fn read_header_block<'a>(lines: &[&'a str], start: usize) -> (Option<&'a str>, usize) {
    let mut i = start;
    // Blank lines before the first header.
    let mut skipped = 0;
    while lines.get(i).is_some_and(|l| l.trim().is_empty()) && skipped < 3 {
        i += 1;
        skipped += 1;
    }
    let mut from = None;
    let mut last: Option<HeaderKey> = None;
    let mut count = 0;
    while let Some(line) = lines.get(i) {
        if line.trim().is_empty() || count >= 30 {
            break;
        }
        match parse_header_line(line) {
            Some((key, value)) => {
                if key == HeaderKey::From && from.is_none() {
                    from = Some(value);
                }
                last = Some(key);
            }
            // Wrapped To/Cc lists continue on the next lines.
            None if matches!(last, Some(HeaderKey::To | HeaderKey::Cc)) => {}
            None => break,
        }
        i += 1;
        count += 1;
    }
    (from, i)
}

fn join_lines(lines: &[&str]) -> String {
    lines.join("\n").trim().to_string()
}

/// Cuts `lines` at the first quoted-history marker (any kind).
fn trim_quoted(lines: &[&str]) -> String {
    match find_marker(lines) {
        Some(m) => {
            let kept = join_lines(lines.get(..m.line).unwrap_or_default());
            if kept.is_empty() {
                join_lines(lines)
            } else {
                kept
            }
        }
        None => join_lines(lines),
    }
}

/// Body of a forward: the note before the marker plus the forwarded text.
/// A forward of a forward (nothing between the blocks) yields the innermost
/// sender and text.
fn forward_body(lines: &[&str], m: Marker) -> (String, Option<Address>) {
    let note = join_lines(lines.get(..m.line).unwrap_or_default());
    let mut start = m.headers;
    let mut from = None;
    let mut after = start;
    for _ in 0..8 {
        let (value, end) = read_header_block(lines, start);
        from = value.and_then(parse_address_loose).or(from);
        after = end;
        let rest = lines.get(end..).unwrap_or_default();
        match find_marker(rest) {
            Some(inner)
                if matches!(inner.kind, MarkerKind::Forward | MarkerKind::HeaderBlock)
                    && join_lines(rest.get(..inner.line).unwrap_or_default()).is_empty() =>
            {
                start = end + inner.headers;
            }
            _ => break,
        }
    }
    let content = trim_quoted(lines.get(after..).unwrap_or_default());
    let body = match (note.is_empty(), content.is_empty()) {
        (false, false) => format!("{note}\n\n{content}"),
        (false, true) => note,
        _ => content,
    };
    (body, from)
}

/// Drops attribution and `>` lines (bottom-posted replies).
fn strip_quote_lines(lines: &[&str]) -> String {
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(n) = attribution_at(lines, i) {
            i += n;
            continue;
        }
        if let Some(l) = lines.get(i)
            && !l.trim_start().starts_with('>')
        {
            kept.push(*l);
        }
        i += 1;
    }
    join_lines(&kept)
}

fn normalize_text(text: &str) -> String {
    let text = truncate_bytes(text, MAX_SCAN_TEXT);
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        for c in line.chars() {
            if c == '\t' || !c.is_control() {
                out.push(c);
            }
        }
        // Trailing whitespace off, then one newline.
        let trimmed = out.trim_end_matches([' ', '\t', '\u{a0}']).len();
        out.truncate(trimmed);
        out.push('\n');
    }
    // Collapse runs of blank lines to one blank line.
    let mut collapsed = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        collapsed.push_str(line);
        collapsed.push('\n');
    }
    collapsed.trim().to_string()
}

fn cap_body(s: String) -> String {
    if s.chars().count() <= MAX_BODY {
        return s;
    }
    let mut cut = truncate_chars(&s, MAX_BODY - 1).to_string();
    cut.push('…');
    cut
}

/// Trims quoted history / unwraps a forward; returns (body, original sender).
fn finish_body(text: &str, subject: &str) -> (String, Option<Address>) {
    let text = normalize_text(text);
    let lines: Vec<&str> = text.lines().collect();
    let forward_subject = is_forward_subject(subject);
    let reply_subject = !forward_subject && is_reply_subject(subject);
    let Some(m) = find_marker(&lines) else {
        return (cap_body(text), None);
    };
    let prefix = join_lines(lines.get(..m.line).unwrap_or_default());
    let (body, from) = match m.kind {
        MarkerKind::Forward => forward_body(&lines, m),
        // A quoted header block is a forward when the subject says so, or when
        // nothing precedes it and the subject is not a reply.
        MarkerKind::HeaderBlock if forward_subject || (prefix.is_empty() && !reply_subject) => {
            forward_body(&lines, m)
        }
        MarkerKind::HeaderBlock => (prefix, None),
        MarkerKind::Attribution(_) | MarkerKind::Quote if prefix.is_empty() => {
            (strip_quote_lines(&lines), None)
        }
        MarkerKind::Attribution(_) | MarkerKind::Quote => (prefix, None),
    };
    (cap_body(body), from)
}

/// Finds a mailbox in a quoted `From:` value: `Name <a@b>`, `"Last, First" <a@b>`,
/// `a@b`, `Name [mailto:a@b]`, `Name <a@b<mailto:a@b>>`.
fn parse_address_loose(value: &str) -> Option<Address> {
    let value = truncate_chars(value, 500);
    let chars: Vec<(usize, char)> = value.char_indices().collect();
    let is_local = |c: char| c.is_alphanumeric() || "._%+-'!#$&*=?^`{|}~/".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    for (k, &(_, c)) in chars.iter().enumerate() {
        if c != '@' {
            continue;
        }
        let mut s = k;
        while s > 0 && chars.get(s - 1).is_some_and(|&(_, c)| is_local(c)) {
            s -= 1;
        }
        let mut e = k + 1;
        while chars.get(e).is_some_and(|&(_, c)| is_domain(c)) {
            e += 1;
        }
        let start = chars.get(s).map_or(value.len(), |&(b, _)| b);
        let end = chars.get(e).map_or(value.len(), |&(b, _)| b);
        let email = value.get(start..end).unwrap_or_default();
        let email = email.trim_start_matches('.').trim_end_matches(['.', '-']);
        let Some((local, domain)) = email.rsplit_once('@') else {
            continue;
        };
        if local.is_empty() || !domain.contains('.') || domain.starts_with(['.', '-']) {
            continue;
        }
        let mut name = value.get(..start).unwrap_or_default().trim();
        loop {
            let before = name.len();
            name = name.trim_end_matches(|c: char| "<[(\"':*".contains(c) || c.is_whitespace());
            if name.len() >= 6
                && name
                    .get(name.len() - 6..)
                    .is_some_and(|t| t.eq_ignore_ascii_case("mailto"))
            {
                name = name.get(..name.len() - 6).unwrap_or_default();
            }
            if name.len() == before {
                break;
            }
        }
        return make_address(Some(name), email);
    }
    None
}

// ---------------------------------------------------------------------------
// Microsoft Graph
// ---------------------------------------------------------------------------

/// A Graph message resource (JSON) as a Mail; Graph bodies are html or text.
///
/// Reads internetMessageId, conversationId (→ `thread_id`), subject,
/// from (or sender), toRecipients, receivedDateTime (else sentDateTime),
/// body, and In-Reply-To/References from internetMessageHeaders when present.
/// Attachment names are not in the resource: `attachments` stays empty.
/// Returns None unless `v` is an object with at least one of body, subject,
/// from, sender or internetMessageId.
pub fn from_graph(v: &Value) -> Option<Mail> {
    let o = v.as_object()?;
    if !["body", "subject", "from", "sender", "internetMessageId"]
        .iter()
        .any(|k| o.contains_key(*k))
    {
        return None;
    }
    let text_of = |k: &str| o.get(k).and_then(Value::as_str);
    let graph_addr = |v: &Value| -> Option<Address> {
        let ea = v.get("emailAddress")?;
        make_address(
            ea.get("name").and_then(Value::as_str),
            ea.get("address").and_then(Value::as_str)?,
        )
    };
    let date = ["receivedDateTime", "sentDateTime"].iter().find_map(|k| {
        DateTime::parse_from_rfc3339(text_of(k)?)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    });
    let mut mail = Mail {
        message_id: text_of("internetMessageId").and_then(clean_id),
        thread_id: text_of("conversationId")
            .map(clean_line)
            .filter(|s| !s.is_empty() && s.len() <= MAX_THREAD_ID),
        subject: text_of("subject").map(clean_subject).unwrap_or_default(),
        from: o
            .get("from")
            .and_then(graph_addr)
            .or_else(|| o.get("sender").and_then(graph_addr)),
        to: o
            .get("toRecipients")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(graph_addr)
                    .take(MAX_RECIPIENTS)
                    .collect()
            })
            .unwrap_or_default(),
        date,
        ..Mail::default()
    };
    if let Some(headers) = o.get("internetMessageHeaders").and_then(Value::as_array) {
        for h in headers {
            let (Some(name), Some(value)) = (
                h.get("name").and_then(Value::as_str),
                h.get("value").and_then(Value::as_str),
            ) else {
                continue;
            };
            if name.eq_ignore_ascii_case("In-Reply-To") {
                mail.in_reply_to = ids_from_header(value);
            } else if name.eq_ignore_ascii_case("References") {
                mail.references = ids_from_header(value);
            }
        }
    }
    let body = o.get("body");
    let content = body
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_html = body
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let text = if is_html {
        html_to_text(content)
    } else {
        truncate_bytes(content, MAX_SCAN_TEXT).to_string()
    };
    let (body, original_from) = finish_body(&text, &mail.subject);
    mail.body = body;
    mail.original_from = original_from;
    Some(mail)
}

/// Ids from a raw In-Reply-To/References value: `<…>` tokens, else words.
fn ids_from_header(value: &str) -> Vec<String> {
    let value = truncate_bytes(value, 64 * 1024);
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(lt) = rest.find('<') {
        let after = rest.get(lt + 1..).unwrap_or_default();
        let Some(gt) = after.find('>') else { break };
        if let Some(id) = after.get(..gt).and_then(clean_id) {
            ids.push(id);
        }
        rest = after.get(gt + 1..).unwrap_or_default();
    }
    if ids.is_empty() {
        ids = value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter_map(clean_id)
            .collect();
    }
    ids.truncate(MAX_IDS);
    ids
}

// ---------------------------------------------------------------------------
// Subject tags, thread references, previews
// ---------------------------------------------------------------------------

/// The ticket number tagged in a subject: "[#12]" anywhere (also "Re: [#12] ...", "[#12 ]" no).
///
/// The first tag with 1–18 digits and a value of at least 1 wins.
pub fn ticket_tag(subject: &str) -> Option<i64> {
    let mut rest = subject;
    while let Some(p) = rest.find("[#") {
        let after = rest.get(p + 2..).unwrap_or_default();
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if (1..=18).contains(&digits)
            && after.as_bytes().get(digits) == Some(&b']')
            && let Some(n) = after.get(..digits).and_then(|d| d.parse::<i64>().ok())
            && n >= 1
        {
            return Some(n);
        }
        rest = after;
    }
    None
}

/// What `/ticket link <n> <thread>` was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreadRef {
    /// Gmail API thread id (12–16 hex digits, lower-cased).
    GmailThread(String),
    /// Opaque id of the Gmail web UI (e.g. `FMfcgz…`); not an API id.
    GmailWebId(String),
    /// Outlook item id (ItemID parameter or the id in an Outlook web link).
    OutlookItem(String),
    /// Graph conversation id (`AAQk…`).
    Conversation(String),
    /// RFC 822 Message-ID without angle brackets.
    MessageId(String),
}

/// Parses what a user pasted to link a ticket to a thread.
///
/// Accepted forms (surrounding whitespace ignored), anything else is None:
/// - Gmail link, id = last segment of the `#` fragment:
///   `https://mail.google.com/mail/u/0/#inbox/18c1f2a3b4c5d6e7` →
///   `GmailThread("18c1f2a3b4c5d6e7")` (12–16 hex digits);
///   `https://mail.google.com/mail/u/0/#inbox/FMfcgzQXJWDsKmHZJfhLwGJqQsvHntXk` →
///   `GmailWebId(..)` (20–128 letters/digits). A `th=` query parameter with a
///   hex id also gives `GmailThread`.
/// - Bare Gmail thread id: `18c1f2a3b4c5d6e7` (exactly 16 hex digits) → `GmailThread`.
/// - Outlook web link (outlook.office.com, outlook.office365.com,
///   outlook.live.com, outlook.cloud.microsoft):
///   `https://outlook.office365.com/owa/?ItemID=AAMkAD%2Fx%3D&exvsurl=1` →
///   `OutlookItem("AAMkAD-x=")` (ItemID parameter, decoded, in Graph's URL-safe form);
///   `https://outlook.office.com/mail/inbox/id/AAQkADI%2B%3D` → `Conversation("AAQkADI_=")`
///   (segment after `/id/`, or after `/deeplink/read/`; `AAQk…` is a conversation's id).
/// - Graph conversation id: `AAQkADOUpag6yWs=` (starts with `AAQk`, base64
///   characters, at least 12 long) → `Conversation`.
/// - Message-ID: `<abc.123@mail.example>` or `abc.123@mail.example` →
///   `MessageId("abc.123@mail.example")` (printable ASCII, one `@` with text
///   on both sides; a bare email address is accepted as a Message-ID too).
pub fn parse_thread_ref(input: &str) -> Option<ThreadRef> {
    let s = input.trim();
    if s.is_empty() || s.len() > 4096 {
        return None;
    }
    let lower_head: String = s.chars().take(8).collect::<String>().to_ascii_lowercase();
    if lower_head.starts_with("https://") || lower_head.starts_with("http://") {
        return thread_ref_from_url(s);
    }
    if let Some(inner) = s.strip_prefix('<') {
        return inner.strip_suffix('>').and_then(message_id_ref);
    }
    if s.starts_with("AAQk") && s.len() >= 12 && is_b64ish(s) {
        return Some(ThreadRef::Conversation(s.to_string()));
    }
    if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(ThreadRef::GmailThread(s.to_ascii_lowercase()));
    }
    if s.contains('@') {
        return message_id_ref(s);
    }
    None
}

fn message_id_ref(s: &str) -> Option<ThreadRef> {
    // RFC 5322 msg-id: dot-atom-text "@" dot-atom-text.
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
    let ok = (3..=MAX_ID_LEN).contains(&s.len())
        && s.split_once('@').is_some_and(|(l, r)| {
            !l.is_empty() && !r.is_empty() && l.bytes().all(atext) && r.bytes().all(atext)
        });
    ok.then(|| ThreadRef::MessageId(s.to_string()))
}

fn is_b64ish(s: &str) -> bool {
    (10..=MAX_THREAD_ID).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.')
        })
}

fn is_gmail_hex(s: &str) -> bool {
    (12..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn thread_ref_from_url(s: &str) -> Option<ThreadRef> {
    let url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    if host == "mail.google.com" {
        if !url.path().starts_with("/mail") {
            return None;
        }
        if let Some(frag) = url.fragment() {
            let frag = frag.split('?').next().unwrap_or_default();
            let segments: Vec<&str> = frag.split('/').filter(|p| !p.is_empty()).collect();
            if segments.len() >= 2 {
                let id = segments.last().copied().unwrap_or_default();
                if is_gmail_hex(id) {
                    return Some(ThreadRef::GmailThread(id.to_ascii_lowercase()));
                }
                if (20..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Some(ThreadRef::GmailWebId(id.to_string()));
                }
            }
        }
        return url
            .query_pairs()
            .find(|(k, _)| k == "th")
            .filter(|(_, v)| is_gmail_hex(v))
            .map(|(_, v)| ThreadRef::GmailThread(v.to_ascii_lowercase()));
    }
    const OUTLOOK_HOSTS: &[&str] = &[
        "outlook.office.com",
        "outlook.office365.com",
        "outlook.live.com",
        "outlook.cloud.microsoft",
    ];
    if OUTLOOK_HOSTS.contains(&host.as_str()) {
        // `+` in an unescaped base64 id comes back from query decoding as a space.
        if let Some((_, v)) = url
            .query_pairs()
            .find(|(k, _)| k.eq_ignore_ascii_case("itemid"))
        {
            let id = v.replace(' ', "+");
            return outlook_web_id(&id);
        }
        let segments: Vec<&str> = url.path_segments()?.collect();
        for (i, seg) in segments.iter().enumerate() {
            let id = match *seg {
                "id" => segments.get(i + 1),
                "read" if i > 0 && segments.get(i - 1) == Some(&"deeplink") => segments.get(i + 1),
                _ => None,
            };
            if let Some(id) = id.and_then(|id| percent_decode(id)) {
                return outlook_web_id(&id);
            }
        }
    }
    None
}

/// An id from an Outlook web link, as Graph takes it. Outlook on the web shows EWS ids
/// (standard base64: `/`, `+`); Graph's REST ids are the same bytes in URL-safe base64 (`-`,
/// `_`), the conversion Office.js's `convertToRestId` makes. With conversations shown as
/// threads, the web link carries the conversation's id (`AAQk…`) rather than a message's.
fn outlook_web_id(id: &str) -> Option<ThreadRef> {
    if !is_b64ish(id) {
        return None;
    }
    let id = id.replace('/', "-").replace('+', "_");
    Some(if id.starts_with("AAQk") {
        ThreadRef::Conversation(id)
    } else {
        ThreadRef::OutlookItem(id)
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The first lines of a body for a chat timeline: at most `lines` non-empty lines and `chars` characters.
///
/// Lines are right-trimmed and blank lines skipped. When anything was left
/// out the result ends with "…" (counted within `chars`).
pub fn preview(body: &str, lines: usize, chars: usize) -> String {
    if lines == 0 || chars == 0 {
        return String::new();
    }
    let mut picked: Vec<&str> = Vec::new();
    let mut more = false;
    let mut len = 0usize;
    for line in body.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if picked.len() == lines || len > chars {
            more = true;
            break;
        }
        len += line.chars().count() + usize::from(!picked.is_empty());
        picked.push(line);
    }
    let joined = picked.join("\n");
    let count = joined.chars().count();
    if count > chars || (more && count + 1 > chars) {
        let mut cut = truncate_chars(&joined, chars - 1).trim_end().to_string();
        cut.push('…');
        cut
    } else if more {
        format!("{joined}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::time::{Duration, Instant};

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn parse(raw: &str) -> Mail {
        match parse_raw(raw.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn addr(name: Option<&str>, email: &str) -> Option<Address> {
        Some(Address {
            name: name.map(str::to_string),
            email: email.to_string(),
        })
    }

    #[test]
    fn plain_text() {
        let m = parse(
            "From: Jane Customer <Jane@Acme.Example>\r\n\
             To: Support <support@desk.example>, bob@desk.example\r\n\
             Subject:  Printer on fire \r\n\
             Date: Mon, 30 Nov 2026 10:12:00 +0100\r\n\
             Message-ID: <abc.123@acme.example>\r\n\
             In-Reply-To: <prev.1@desk.example>\r\n\
             References: <root.0@desk.example> <prev.1@desk.example>\r\n\
             \r\n\
             Hello,\r\nthe printer is on fire.\r\n\r\nJane\r\n",
        );
        assert_eq!(m.subject, "Printer on fire");
        assert_eq!(m.from, addr(Some("Jane Customer"), "jane@acme.example"));
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.to.get(1), addr(None, "bob@desk.example").as_ref());
        assert_eq!(m.message_id.as_deref(), Some("abc.123@acme.example"));
        assert_eq!(m.in_reply_to, vec!["prev.1@desk.example"]);
        assert_eq!(
            m.references,
            vec!["root.0@desk.example", "prev.1@desk.example"]
        );
        assert_eq!(
            m.date.map(|d| d.to_rfc3339()),
            Some("2026-11-30T09:12:00+00:00".to_string())
        );
        assert_eq!(m.body, "Hello,\nthe printer is on fire.\n\nJane");
        assert!(m.attachments.is_empty());
        assert_eq!(m.original_from, None);
        assert_eq!(m.thread_id, None);
    }

    #[test]
    fn multipart_alternative_prefers_plain() {
        let m = parse(
            "From: a@x.example\r\nSubject: alt\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"zz\"\r\n\r\n\
             --zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain version\r\n\
             --zz\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML <b>version</b></p>\r\n\
             --zz--\r\n",
        );
        assert_eq!(m.body, "Plain version");
    }

    #[test]
    fn html_only_is_converted() {
        let m = parse(
            "From: a@x.example\r\nSubject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
             <html><head><style>p {color:red}</style></head><body><p>Hello <b>there</b> &amp; welcome</p>\
             <div>Second <a href=\"https://x.example\">line</a></div></body></html>\r\n",
        );
        assert!(m.body.contains("Hello there & welcome"), "{}", m.body);
        assert!(m.body.contains("Second line"), "{}", m.body);
        assert!(
            !m.body.contains('<') && !m.body.contains("color"),
            "{}",
            m.body
        );
    }

    #[test]
    fn html_only_alternative_is_converted() {
        let m = parse(
            "From: a@x.example\r\nSubject: html\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             <div>Caf=C3=A9 <i>open</i></div>\r\n--b--\r\n",
        );
        assert_eq!(m.body, "Café open");
    }

    #[test]
    fn quoted_printable() {
        let m = parse(
            "From: a@x.example\r\nSubject: qp\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             Caf=C3=A9 au lait, this line is long and wraps with a soft line br=\r\neak here.\r\n\
             a=3Db\r\n",
        );
        assert_eq!(
            m.body,
            "Café au lait, this line is long and wraps with a soft line break here.\na=b"
        );
    }

    #[test]
    fn base64_body() {
        let body = b64("Grüße aus Köln\nZeile zwei\n".as_bytes());
        let raw = format!(
            "From: a@x.example\r\nSubject: b64\r\nContent-Type: text/plain; charset=UTF-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        );
        assert_eq!(parse(&raw).body, "Grüße aus Köln\nZeile zwei");
    }

    #[test]
    fn non_utf8_charsets() {
        let mut raw = b"From: a@x.example\r\nSubject: latin\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\r\nCaf\xe9 cr\xe8me\r\n".to_vec();
        assert_eq!(
            parse_raw(&raw).map(|m| m.body),
            Ok("Café crème".to_string())
        );

        // Latin-1 in a base64 part.
        let body = b64(b"Gr\xfc\xdfe");
        let raw2 = format!(
            "From: a@x.example\r\nSubject: latin\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        );
        assert_eq!(parse(&raw2).body, "Grüße");

        // Unknown / invalid charset names and invalid bytes: no panic, lossy text.
        for cs in [
            "x-unknown-charset",
            "",
            "\"\"",
            "utf-8\u{0}",
            &"a".repeat(300),
            "utf-16",
        ] {
            raw = format!(
                "From: a@x.example\r\nSubject: =?{cs}?Q?caf=E9?=\r\nContent-Type: text/plain; charset={cs}\r\n\r\n"
            )
            .into_bytes();
            raw.extend_from_slice(b"Caf\xe9 \xff\xfe\x00 ok\r\n");
            let m = parse_raw(&raw);
            assert!(m.is_ok(), "{cs}");
        }
        let m = parse_raw(b"From: a@x.example\r\nSubject: x\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nCaf\xe9 ok\r\n");
        assert_eq!(m.map(|m| m.body), Ok("Caf\u{fffd} ok".to_string()));
    }

    #[test]
    fn attachments_listed() {
        let pdf = b64(b"%PDF-1.4 fake");
        let raw = format!(
            "From: a@x.example\r\nSubject: files\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n\
             --mix\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
             --mix\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n\
             Content-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n\
             --mix\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename*=UTF-8''caf%C3%A9%0D%0A.png\r\n\
             Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
             --mix\r\nContent-Type: text/plain; name=log.txt\r\nContent-Disposition: attachment\r\n\r\nlog line\r\n\
             --mix--\r\n"
        );
        let m = parse(&raw);
        assert_eq!(m.body, "See attached.");
        assert_eq!(m.attachments, vec!["invoice.pdf", "café .png", "log.txt"]);
    }

    const GMAIL_FWD: &str = "From: Agent Bob <bob@desk.example>\r\n\
        To: support@desk.example\r\n\
        Subject: Fwd: Printer on fire\r\n\r\n\
        FYI, customer below.\r\n\r\n\
        ---------- Forwarded message ---------\r\n\
        From: Jane Customer <jane@acme.example>\r\n\
        Date: Mon, 30 Nov 2026 at 10:12\r\n\
        Subject: Printer on fire\r\n\
        To: <support@desk.example>\r\n\r\n\
        Our printer is on fire.\r\nPlease help.\r\n\r\n\
        On Sun, 29 Nov 2026 at 09:00, Desk <support@desk.example> wrote:\r\n\
        > older stuff\r\n";

    #[test]
    fn gmail_forward() {
        let m = parse(GMAIL_FWD);
        assert_eq!(m.from, addr(Some("Agent Bob"), "bob@desk.example"));
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(
            m.body,
            "FYI, customer below.\n\nOur printer is on fire.\nPlease help."
        );
    }

    #[test]
    fn gmail_forward_html() {
        let raw = "From: bob@desk.example\r\nSubject: Fwd: x\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n\
            <div dir=\"ltr\"><br><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">\
            ---------- Forwarded message ---------<br>From: <strong class=\"gmail_sendername\" dir=\"auto\">Jane Customer</strong> \
            <span dir=\"auto\">&lt;<a href=\"mailto:jane@acme.example\">jane@acme.example</a>&gt;</span><br>\
            Date: Mon, 30 Nov 2026 at 10:12<br>Subject: Printer on fire<br>To: &lt;<a href=\"mailto:support@desk.example\">support@desk.example</a>&gt;<br></div><br><br>\
            <div dir=\"ltr\">Our printer is on fire.</div></div></div>\r\n";
        let m = parse(raw);
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(m.body, "Our printer is on fire.");
    }

    #[test]
    fn outlook_forward() {
        let m = parse(
            "From: bob@desk.example\r\nSubject: FW: Printer on fire\r\n\r\n\
             Please handle.\r\n\r\n\
             ________________________________\r\n\
             From: Jane Customer <jane@acme.example>\r\n\
             Sent: Monday, November 30, 2026 10:12 AM\r\n\
             To: Support <support@desk.example>\r\n\
             Subject: Printer on fire\r\n\r\n\
             Our printer is on fire.\r\n",
        );
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(m.body, "Please handle.\n\nOur printer is on fire.");
    }

    #[test]
    fn outlook_forward_variants() {
        let cases: &[(&str, &str, Option<Address>)] = &[
            // Plain From/Sent block, no underline, no name.
            (
                "FW: x",
                "From: jane@acme.example\r\nSent: Monday, November 30, 2026 10:12 AM\r\nTo: support@desk.example\r\nSubject: x\r\n\r\nHelp!\r\n",
                addr(None, "jane@acme.example"),
            ),
            // Quoted "Last, First".
            (
                "Fw: x",
                "note\r\n\r\nFrom: \"Customer, Jane\" <jane@acme.example>\r\nSent: Monday\r\nTo: a@b.example\r\nSubject: x\r\n\r\nHelp!\r\n",
                addr(Some("Customer, Jane"), "jane@acme.example"),
            ),
            // -----Original Message----- with [mailto:].
            (
                "FW: x",
                "-----Original Message-----\r\nFrom: Jane Customer [mailto:Jane@Acme.example]\r\nSent: Monday\r\nTo: Support\r\nSubject: x\r\n\r\nHelp!\r\n",
                addr(Some("Jane Customer"), "jane@acme.example"),
            ),
            // Outlook's <mailto:> artefact.
            (
                "FW: x",
                "________________________________\r\nFrom: Jane Customer <jane@acme.example<mailto:jane@acme.example>>\r\nSent: Monday\r\nTo: Support\r\nSubject: x\r\n\r\nHelp!\r\n",
                addr(Some("Jane Customer"), "jane@acme.example"),
            ),
            // German Outlook.
            (
                "WG: x",
                "________________________________\r\nVon: Jana Kundin <jana@acme.example>\r\nGesendet: Montag, 30. November 2026 10:12\r\nAn: Support\r\nBetreff: x\r\n\r\nHelp!\r\n",
                addr(Some("Jana Kundin"), "jana@acme.example"),
            ),
            // No address at all: nothing set.
            (
                "FW: x",
                "________________________________\r\nFrom: Jane Customer\r\nSent: Monday\r\nTo: Support\r\nSubject: x\r\n\r\nHelp!\r\n",
                None,
            ),
        ];
        for (subject, body, want) in cases {
            let m = parse(&format!(
                "From: bob@desk.example\r\nSubject: {subject}\r\n\r\n{body}"
            ));
            assert_eq!(&m.original_from, want, "{body}");
            assert!(m.body.ends_with("Help!"), "{:?}", m.body);
        }
    }

    #[test]
    fn other_forward_styles() {
        let cases: &[(&str, &str, &str)] = &[
            // Apple Mail.
            (
                "Fwd: x",
                "See below\r\n\r\nBegin forwarded message:\r\n\r\nFrom: Jane Customer <jane@acme.example>\r\nSubject: Printer\r\nDate: 30 November 2026 at 10:12:00 CET\r\nTo: support@desk.example\r\n\r\nIt burns.\r\n",
                "See below\n\nIt burns.",
            ),
            // Thunderbird (tabs after the colons).
            (
                "Fwd: x",
                "\r\n-------- Forwarded Message --------\r\nSubject: \tPrinter\r\nDate: \tMon, 30 Nov 2026 10:12:00 +0100\r\nFrom: \tJane Customer <jane@acme.example>\r\nTo: \tsupport@desk.example\r\n\r\nIt burns.\r\n",
                "It burns.",
            ),
            // Forward of a forward: the innermost sender and text.
            (
                "Fwd: Fwd: x",
                "---------- Forwarded message ---------\r\nFrom: Carl <carl@desk.example>\r\nDate: Mon\r\nSubject: Fwd: x\r\nTo: <bob@desk.example>\r\n\r\n\r\n---------- Forwarded message ---------\r\nFrom: Jane Customer <jane@acme.example>\r\nDate: Mon\r\nSubject: x\r\nTo: <carl@desk.example>\r\n\r\nIt burns.\r\n",
                "It burns.",
            ),
            // Forwarded text that has its own quoted history.
            (
                "Fwd: x",
                "---------- Forwarded message ---------\r\nFrom: Jane Customer <jane@acme.example>\r\nDate: Mon\r\nSubject: x\r\nTo: <support@desk.example>\r\n\r\nIt burns.\r\n\r\nOn Sun, Desk <support@desk.example> wrote:\r\n> try this\r\n",
                "It burns.",
            ),
            // Outlook forward with no FW: subject and nothing before the block.
            (
                "Printer",
                "From: Jane Customer <jane@acme.example>\r\nSent: Monday\r\nTo: Support\r\nSubject: Printer\r\n\r\nIt burns.\r\n",
                "It burns.",
            ),
        ];
        for (subject, body, want) in cases {
            let m = parse(&format!(
                "From: bob@desk.example\r\nSubject: {subject}\r\n\r\n{body}"
            ));
            assert_eq!(
                m.original_from,
                addr(Some("Jane Customer"), "jane@acme.example"),
                "{body}"
            );
            assert_eq!(m.body, *want);
        }
        // Outlook HTML forward.
        let m = parse(
            "From: bob@desk.example\r\nSubject: FW: x\r\nContent-Type: text/html\r\n\r\n\
            <html><body><div>Please check.</div><hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\
            <div id=\"divRplyFwdMsg\" dir=\"ltr\"><font face=\"Calibri\"><b>From:</b> Jane Customer &lt;jane@acme.example&gt;<br>\
            <b>Sent:</b> Monday, November 30, 2026 10:12 AM<br><b>To:</b> Support &lt;support@desk.example&gt;<br>\
            <b>Subject:</b> Printer</font><div>&nbsp;</div></div><div><p>It burns.</p><p>Help!</p></div></body></html>\r\n",
        );
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(m.body, "Please check.\n\nIt burns.\n\nHelp!");
    }

    #[test]
    fn not_a_forward() {
        // A reply consisting only of the quoted Outlook block: empty body, no original sender.
        let m = parse(
            "From: jane@acme.example\r\nSubject: RE: x\r\n\r\nFrom: Support <support@desk.example>\r\nSent: Monday\r\nTo: Jane\r\nSubject: x\r\n\r\nTry this.\r\n",
        );
        assert_eq!((m.body.as_str(), m.original_from), ("", None));
        // A stray "From:" line in running text is kept.
        let m = parse(
            "From: jane@acme.example\r\nSubject: hi\r\n\r\nThe mail came\r\nFrom: my boss\r\nyesterday.\r\n",
        );
        assert_eq!(m.body, "The mail came\nFrom: my boss\nyesterday.");
        // Fwd: subject without any forwarded block or address.
        let m = parse("From: jane@acme.example\r\nSubject: Fwd: hi\r\n\r\nJust text.\r\n");
        assert_eq!((m.body.as_str(), m.original_from), ("Just text.", None));
    }

    #[test]
    fn gmail_html_reply_trimmed() {
        let m = parse(
            "From: jane@acme.example\r\nSubject: Re: x\r\nContent-Type: text/html\r\n\r\n\
            <div dir=\"ltr\">Still burning!</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">\
            On Mon, Nov 30, 2026 at 10:12\u{202f}AM Support Desk Team With A Rather Long Name &lt;<a href=\"mailto:support@desk.example\">support@desk.example</a>&gt; wrote:<br></div>\
            <blockquote class=\"gmail_quote\" style=\"margin:0px\">Did you try turning it off?<br></blockquote></div>\r\n",
        );
        assert_eq!(m.body, "Still burning!");
    }

    #[test]
    fn html_fallback_helpers() {
        assert_eq!(html_depth("<div><p>a<br><img src=x/><div></div></div>"), 2);
        assert_eq!(html_depth("<a<a<a<a"), 4);
        assert_eq!(
            strip_tags(
                "<style>p{}</STYLE><p>Tom &amp; Jerry&#33; &#x263A; &bogus; <b>x</b></p>a < b"
            ),
            "\nTom & Jerry! ☺ &bogus; x\na < b"
        );
        // Deep enough for the fallback, still readable.
        let html = format!(
            "{}Hello &lt;you&gt;{}",
            "<div>".repeat(MAX_HTML_DEPTH + 1),
            "</div>".repeat(MAX_HTML_DEPTH + 1)
        );
        assert_eq!(html_to_text(&html).trim(), "Hello <you>");
    }

    #[test]
    fn attached_rfc822() {
        let inner = "From: Jane Customer <jane@acme.example>\r\nSubject: Printer on fire\r\n\r\nOur printer is on fire.\r\n";
        let raw = format!(
            "From: bob@desk.example\r\nSubject: Fwd: Printer on fire\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
             --m\r\nContent-Type: text/plain\r\n\r\n\r\n--m\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--m--\r\n"
        );
        let m = parse(&raw);
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(m.body, "Our printer is on fire.");
        assert_eq!(m.attachments, vec!["Printer on fire.eml"]);

        // Base64-encoded message/rfc822 (seen in the wild), with a note.
        let raw = format!(
            "From: bob@desk.example\r\nSubject: see attached\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
             --m\r\nContent-Type: text/plain\r\n\r\nNote from Bob\r\n\
             --m\r\nContent-Type: message/rfc822; name=\"orig.eml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --m\r\nContent-Type: application/pdf; name=after.pdf\r\n\r\nxx\r\n--m--\r\n",
            b64(inner.as_bytes())
        );
        let m = parse(&raw);
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(m.body, "Note from Bob");
        assert_eq!(m.attachments, vec!["orig.eml", "after.pdf"]);
    }

    #[test]
    fn on_wrote_trimming() {
        let m = parse(
            "From: jane@acme.example\r\nSubject: Re: [#12] Printer\r\n\r\n\
             Still burning.\r\n\r\n\
             On Mon, Nov 30, 2026 at 10:12 AM Support Desk <support@desk.example> wrote:\r\n\
             > Did you try turning it off?\r\n",
        );
        assert_eq!(m.body, "Still burning.");
        assert_eq!(m.original_from, None);

        // Attribution wrapped over two lines, no ">" after it.
        let m = parse(
            "From: jane@acme.example\r\nSubject: Re: x\r\n\r\nThanks!\r\n\r\n\
             On Mon, Nov 30, 2026 at 10:12 AM Support Desk With A Very Long Name\r\n\
             <support@desk.example> wrote:\r\n\r\nDid you try turning it off?\r\n",
        );
        assert_eq!(m.body, "Thanks!");

        // Bottom-posted reply: the quote is dropped, the answer kept.
        let m = parse(
            "From: jane@acme.example\r\nSubject: Re: x\r\n\r\n\
             On Mon, Nov 30, 2026, Desk wrote:\r\n> question?\r\n\r\nMy answer.\r\n",
        );
        assert_eq!(m.body, "My answer.");
    }

    #[test]
    fn gt_quote_trimming() {
        let m = parse(
            "From: jane@acme.example\r\nSubject: Re: x\r\n\r\nYes it is.\r\n> Is it on fire?\r\n> really?\r\nmore\r\n",
        );
        assert_eq!(m.body, "Yes it is.");
    }

    #[test]
    fn outlook_reply_trimming() {
        let m = parse(
            "From: jane@acme.example\r\nSubject: RE: x\r\n\r\nThanks, that worked.\r\n\r\n\
             From: Support <support@desk.example>\r\nSent: Monday, November 30, 2026 10:12 AM\r\n\
             To: Jane <jane@acme.example>\r\nSubject: x\r\n\r\nTry turning it off.\r\n",
        );
        assert_eq!(m.body, "Thanks, that worked.");
        assert_eq!(m.original_from, None);

        // Outlook HTML reply with an <hr>.
        let raw = "From: jane@acme.example\r\nSubject: RE: x\r\nContent-Type: text/html\r\n\r\n\
            <html><body><div>Thanks, that worked.</div><hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\
            <div id=\"divRplyFwdMsg\" dir=\"ltr\"><font face=\"Calibri\"><b>From:</b> Support &lt;support@desk.example&gt;<br>\
            <b>Sent:</b> Monday, November 30, 2026 10:12 AM<br><b>To:</b> Jane<br><b>Subject:</b> x</font><div>&nbsp;</div></div>\
            <div>Try turning it off.</div></body></html>\r\n";
        assert_eq!(parse(raw).body, "Thanks, that worked.");
    }

    #[test]
    fn header_injection_stripped() {
        let m = parse(
            "From: =?UTF-8?Q?Jane=0D=0ABcc:_evil@x.example?= <jane@acme.example>\r\n\
             Subject: =?UTF-8?Q?Hello=0D=0ABcc:_evil@x.example?=\r\n\
             Subject: =?UTF-8?Q?Hello=0D=0ABcc:_evil@x.example=0D=0A=0D=0Abody?=\r\n\r\nhi\r\n",
        );
        assert_eq!(m.subject, "Hello Bcc: evil@x.example body");
        assert!(!m.subject.contains(['\r', '\n']));
        let name = m.from.and_then(|f| f.name).unwrap_or_default();
        assert_eq!(name, "Jane Bcc: evil@x.example");
    }

    #[test]
    fn encoded_word_subject() {
        let subject = b64("Drucker brennt – bitte hilfe 🔥".as_bytes());
        let m = parse(&format!(
            "From: a@x.example\r\nSubject: =?UTF-8?B?{subject}?=\r\n\r\nhi\r\n"
        ));
        assert_eq!(m.subject, "Drucker brennt – bitte hilfe 🔥");
        let long = format!(
            "From: a@x.example\r\nSubject: {}\r\n\r\nhi\r\n",
            "é".repeat(900)
        );
        assert_eq!(parse(&long).subject.chars().count(), 500);
    }

    #[test]
    fn too_large() {
        let raw = vec![b'a'; 11 * 1024 * 1024];
        assert_eq!(parse_raw(&raw), Err(MailError::TooLarge(11 * 1024 * 1024)));
        assert!(MailError::TooLarge(1).to_string().contains("too large"));
    }

    #[test]
    fn long_body_is_capped() {
        let raw = format!(
            "From: a@x.example\r\nSubject: long\r\n\r\n{}\r\n",
            "ß".repeat(MAX_BODY + 500)
        );
        let body = parse(&raw).body;
        assert_eq!(body.chars().count(), MAX_BODY);
        assert!(body.ends_with('…'));
    }

    /// Runs `f` on a thread with a 256 KiB stack and a time limit.
    fn small_stack(f: impl FnOnce() + Send + 'static) -> Duration {
        let start = Instant::now();
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        assert!(handle.join().is_ok());
        start.elapsed()
    }

    fn nested_multipart(n: usize) -> String {
        let mut s = String::from(
            "From: a@x.example\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n",
        );
        for i in 0..n {
            s.push_str(&format!(
                "--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
                i + 1
            ));
        }
        s.push_str(&format!(
            "--b{n}\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--b{n}--\r\n"
        ));
        for i in (0..n).rev() {
            s.push_str(&format!("--b{i}--\r\n"));
        }
        s
    }

    fn nested_messages(n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                "From: a{i}@x.example\r\nSubject: s{i}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n\
                 --b{i}\r\nContent-Type: text/plain\r\n\r\nlevel {i}\r\n--b{i}\r\nContent-Type: message/rfc822\r\n\r\n"
            ));
        }
        s.push_str("From: last@x.example\r\nSubject: last\r\n\r\nhello\r\n");
        for i in (0..n).rev() {
            s.push_str(&format!("\r\n--b{i}--\r\n"));
        }
        s
    }

    #[test]
    fn deep_mime_nesting_is_safe() {
        let elapsed = small_stack(|| {
            let m = parse(&nested_multipart(500));
            assert_eq!(m.body, "inner text");
            let m = parse(&nested_messages(500));
            assert_eq!(m.body, "level 0");
            assert_eq!(m.original_from, addr(None, "a1@x.example"));
            // The same chain inside base64-encoded message/rfc822 parts, which
            // mail-parser would decode and walk recursively.
            let mut raw = nested_messages(3000);
            for i in 0..4 {
                raw = format!(
                    "From: w{i}@x.example\r\nSubject: wrap {i}\r\nContent-Type: multipart/mixed; boundary=\"w\"\r\n\r\n\
                     --w\r\nContent-Type: text/plain\r\n\r\nwrapper {i}\r\n\
                     --w\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--w--\r\n",
                    b64(raw.as_bytes())
                );
            }
            let m = parse(&raw);
            assert_eq!(m.body, "wrapper 3");
            assert_eq!(m.original_from, addr(None, "w2@x.example"));
            // Top-level chain of message/rfc822 without multipart.
            let mut raw = String::from("From: a@x.example\r\nSubject: top\r\n");
            raw.push_str(&"Content-Type: message/rfc822\r\n\r\n".repeat(20_000));
            assert!(parse_raw(raw.as_bytes()).is_ok());
        });
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    }

    #[test]
    fn deep_html_is_safe() {
        let elapsed = small_stack(|| {
            let html = format!(
                "{}deep text{}",
                "<div><table><tr><td>".repeat(20_000),
                "</td></tr></table></div>".repeat(20_000)
            );
            let raw = format!(
                "From: a@x.example\r\nSubject: h\r\nContent-Type: text/html\r\n\r\n{html}\r\n"
            );
            assert_eq!(parse(&raw).body, "deep text");
            let lists = format!("<ul><li>{}x", "<ul><li><blockquote>".repeat(150));
            let raw = format!(
                "From: a@x.example\r\nSubject: h\r\nContent-Type: text/html\r\n\r\n{lists}\r\n"
            );
            assert!(parse(&raw).body.contains('x'));
        });
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    }

    #[test]
    fn garbage_does_not_panic() {
        assert_eq!(parse_raw(b""), Err(MailError::Unparseable));
        assert_eq!(
            parse_raw(b"\x00\x01\x02\xff\xfe"),
            Err(MailError::Unparseable)
        );
        assert_eq!(
            parse_raw(b"just some text without headers\n"),
            Err(MailError::Unparseable)
        );
        // Pseudo-random bytes and mutilated MIME: Ok or Unparseable, never a panic.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let template = GMAIL_FWD.as_bytes();
        for round in 0..300 {
            let len = (next() % 2000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
            if round % 2 == 0 {
                bytes = template.to_vec();
                for _ in 0..(next() % 20) {
                    let at = (next() as usize) % bytes.len();
                    if let Some(b) = bytes.get_mut(at) {
                        *b = (next() & 0xff) as u8;
                    }
                }
                let cut = (next() as usize) % bytes.len();
                bytes.truncate(cut);
            }
            let _ = parse_raw(&bytes);
        }
        for broken in [
            "From: a@x.example\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
            "From: a@x.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n",
            "From: a@x.example\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n",
            "From: a@x.example\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\nContent-Transfer-Encoding: base64\r\n\r\nRnJvbTogYkB4LmV4YW1wbGUNCg0KaGk=\r\n--d--\r\n",
            "From: \r\nTo: ,,,<>@\r\nDate: 99 Foo 99999 99:99:99 +9999\r\nMessage-ID: <<>>\r\nSubject: =?x?Q?=?=\r\n\r\n",
        ] {
            let _ = parse_raw(broken.as_bytes());
        }
    }

    #[test]
    fn graph_example() {
        let v: Value = serde_json::from_str(r#"{"id":"AAMkADhMGAAA=","receivedDateTime":"2018-09-09T03:15:08Z","sentDateTime":"2018-09-09T03:15:06Z","hasAttachments":false,"internetMessageId":"<MWHPR6E1BE060@MWHPR1120.namprd22.prod.outlook.com>","subject":"9/9/2018: concert","conversationId":"AAQkADOUpag6yWs=","body":{"contentType":"html","content":"<html>\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\nThe group represents Nevada.\r\n</body>\r\n</html>\r\n"},"from":{"emailAddress":{"name":"Adele Vance","address":"adelev@contoso.OnMicrosoft.com"}},"toRecipients":[{"emailAddress":{"name":"Alex Wilber","address":"AlexW@contoso.OnMicrosoft.com"}}]}"#)
            .unwrap_or_default();
        let m = from_graph(&v).unwrap_or_default();
        assert_eq!(m.body, "The group represents Nevada.");
        assert_eq!(
            m.from,
            addr(Some("Adele Vance"), "adelev@contoso.onmicrosoft.com")
        );
        assert_eq!(
            m.to,
            vec![Address {
                name: Some("Alex Wilber".into()),
                email: "alexw@contoso.onmicrosoft.com".into()
            }]
        );
        assert_eq!(
            m.message_id.as_deref(),
            Some("MWHPR6E1BE060@MWHPR1120.namprd22.prod.outlook.com")
        );
        assert_eq!(m.thread_id.as_deref(), Some("AAQkADOUpag6yWs="));
        assert_eq!(m.subject, "9/9/2018: concert");
        assert_eq!(
            m.date.map(|d| d.to_rfc3339()),
            Some("2018-09-09T03:15:08+00:00".to_string())
        );
        assert!(m.attachments.is_empty());
    }

    #[test]
    fn graph_headers_forward_and_rejects() {
        let v = serde_json::json!({
            "subject": "FW: Printer",
            "sentDateTime": "2026-11-30T10:12:00+01:00",
            "body": {"contentType": "text", "content": "FYI\r\n\r\nFrom: Jane Customer <jane@acme.example>\r\nSent: Monday\r\nTo: Support\r\nSubject: Printer\r\n\r\nIt burns."},
            "internetMessageHeaders": [
                {"name": "In-Reply-To", "value": "<a@b.example>"},
                {"name": "References", "value": "<r1@b.example>\r\n <a@b.example>"}
            ]
        });
        let m = from_graph(&v).unwrap_or_default();
        assert_eq!(m.body, "FYI\n\nIt burns.");
        assert_eq!(
            m.original_from,
            addr(Some("Jane Customer"), "jane@acme.example")
        );
        assert_eq!(m.in_reply_to, vec!["a@b.example"]);
        assert_eq!(m.references, vec!["r1@b.example", "a@b.example"]);
        assert_eq!(
            m.date.map(|d| d.to_rfc3339()),
            Some("2026-11-30T09:12:00+00:00".to_string())
        );
        assert_eq!(from_graph(&serde_json::json!([1, 2])), None);
        assert_eq!(from_graph(&serde_json::json!({"id": "x"})), None);
        assert_eq!(
            from_graph(&serde_json::json!({"subject": 5, "from": "nope"})).map(|m| m.from),
            Some(None)
        );
    }

    #[test]
    fn ticket_tags() {
        let cases: &[(&str, Option<i64>)] = &[
            ("[#12] Printer", Some(12)),
            ("Re: [#12] Printer", Some(12)),
            ("RE: AW: Printer [#7]", Some(7)),
            ("Printer [#12 ]", None),
            ("Printer [# 12]", None),
            ("Printer [#]", None),
            ("Printer [#0]", None),
            ("Printer [#-3]", None),
            ("Printer #12", None),
            ("[#abc] then [#34]", Some(34)),
            ("[#99999999999999999999]", None),
            ("[#123456789012345678]", Some(123_456_789_012_345_678)),
            ("[[#5]]", Some(5)),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(ticket_tag(s), *want, "{s}");
        }
    }

    #[test]
    fn thread_refs() {
        use ThreadRef::*;
        let cases: &[(&str, Option<ThreadRef>)] = &[
            (
                "https://mail.google.com/mail/u/0/#inbox/18c1f2a3b4c5d6e7",
                Some(GmailThread("18c1f2a3b4c5d6e7".into())),
            ),
            (
                "https://mail.google.com/mail/u/1/#label/Support/18C1F2A3B4C5D6E7",
                Some(GmailThread("18c1f2a3b4c5d6e7".into())),
            ),
            (
                "  https://mail.google.com/mail/u/0/#inbox/FMfcgzQXJWDsKmHZJfhLwGJqQsvHntXk  ",
                Some(GmailWebId("FMfcgzQXJWDsKmHZJfhLwGJqQsvHntXk".into())),
            ),
            (
                "https://mail.google.com/mail/u/0/#search/printer+fire/FMfcgzQXJWDsKmHZJfhLwGJqQsvHntXk?compose=new",
                Some(GmailWebId("FMfcgzQXJWDsKmHZJfhLwGJqQsvHntXk".into())),
            ),
            (
                "https://mail.google.com/mail/u/0/?ui=2&view=pt&th=18c1f2a3b4c5d6e7",
                Some(GmailThread("18c1f2a3b4c5d6e7".into())),
            ),
            (
                "18c1f2a3b4c5d6e7",
                Some(GmailThread("18c1f2a3b4c5d6e7".into())),
            ),
            (
                "https://outlook.office365.com/owa/?ItemID=AAMkADAwATM0MDAAMS1iNjQ3%2FLTI2AAA%3D&exvsurl=1&viewmodel=ReadMessageItem",
                Some(OutlookItem("AAMkADAwATM0MDAAMS1iNjQ3-LTI2AAA=".into())),
            ),
            (
                // An unescaped `+` in the query comes back as a space.
                "https://outlook.office365.com/owa/?ItemID=AAMkADAwATM0MDAAMS1+iNjQ3AAA%3D",
                Some(OutlookItem("AAMkADAwATM0MDAAMS1_iNjQ3AAA=".into())),
            ),
            (
                "https://outlook.office.com/mail/inbox/id/AAQkADAwATM0MDAAMS1iNjQ3LTI2%2B%3D",
                Some(Conversation("AAQkADAwATM0MDAAMS1iNjQ3LTI2_=".into())),
            ),
            (
                "https://outlook.office.com/mail/inbox/id/AAMkADAwATM0MDAAMS1iNjQ3%2FAAA%3D",
                Some(OutlookItem("AAMkADAwATM0MDAAMS1iNjQ3-AAA=".into())),
            ),
            (
                "https://outlook.live.com/mail/0/deeplink/read/AAMkADAwATM0MDAAMS1iNjQ3",
                Some(OutlookItem("AAMkADAwATM0MDAAMS1iNjQ3".into())),
            ),
            (
                "AAQkADOUpag6yWs=",
                Some(Conversation("AAQkADOUpag6yWs=".into())),
            ),
            (
                "<CAF=abc.123@mail.gmail.com>",
                Some(MessageId("CAF=abc.123@mail.gmail.com".into())),
            ),
            (
                "MWHPR6E1BE060@MWHPR1120.namprd22.prod.outlook.com",
                Some(MessageId(
                    "MWHPR6E1BE060@MWHPR1120.namprd22.prod.outlook.com".into(),
                )),
            ),
            // Rejects.
            ("", None),
            ("   ", None),
            ("12", None),
            ("hello world", None),
            ("https://mail.google.com/mail/u/0/#inbox", None),
            ("https://mail.google.com/mail/u/0/#inbox/p2", None),
            (
                "https://evil.example/mail/u/0/#inbox/18c1f2a3b4c5d6e7",
                None,
            ),
            (
                "https://mail.google.com.evil.example/mail/#inbox/18c1f2a3b4c5d6e7",
                None,
            ),
            ("https://outlook.office.com/mail/inbox", None),
            ("https://outlook.office.com/mail/inbox/id/", None),
            ("https://outlook.office.com/mail/inbox/id/%ZZ", None),
            ("javascript:alert(1)@x", None),
            ("<no-at-sign>", None),
            ("<a@b> trailing", None),
            ("a b@c.example", None),
            ("AAQk", None),
            ("AAQk not base64!", None),
            ("ftp://mail.google.com/mail/#inbox/18c1f2a3b4c5d6e7", None),
            ("18c1f2a3b4c5d6e", None),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_thread_ref(input), want, "{input}");
        }
    }

    #[test]
    fn previews() {
        let body = "Hello team,\n\n\n  \nthe printer   \nis on fire.\nSecond para.";
        assert_eq!(
            preview(body, 3, 100),
            "Hello team,\nthe printer\nis on fire.…"
        );
        assert_eq!(
            preview(body, 10, 100),
            "Hello team,\nthe printer\nis on fire.\nSecond para."
        );
        assert_eq!(preview(body, 10, 12), "Hello team,…");
        assert_eq!(preview(body, 1, 11), "Hello team…");
        assert_eq!(preview(body, 1, 12), "Hello team,…");
        assert_eq!(preview("Hello team,", 1, 11), "Hello team,");
        assert_eq!(preview(body, 1, 5), "Hell…");
        assert_eq!(preview("ééééé", 1, 3), "éé…");
        assert_eq!(preview(body, 0, 100), "");
        assert_eq!(preview(body, 3, 0), "");
        assert_eq!(preview("", 3, 10), "");
        assert_eq!(preview("\n\n \n", 3, 10), "");
        assert_eq!(preview("a\nb", 1, 1), "…");
    }

    #[test]
    fn address_parsing() {
        assert_eq!(
            parse_address_loose("jane@acme.example"),
            addr(None, "jane@acme.example")
        );
        assert_eq!(
            parse_address_loose("<jane@acme.example>"),
            addr(None, "jane@acme.example")
        );
        assert_eq!(
            parse_address_loose("*Jane* <jane@acme.example>"),
            addr(Some("Jane"), "jane@acme.example")
        );
        assert_eq!(
            parse_address_loose("Jane (jane@acme.example)"),
            addr(Some("Jane"), "jane@acme.example")
        );
        assert_eq!(parse_address_loose("Jane Customer"), None);
        assert_eq!(parse_address_loose("me @ home"), None);
    }

    #[test]
    fn mail_serde_roundtrip() {
        let m = parse(GMAIL_FWD);
        let json = serde_json::to_string(&m).unwrap_or_default();
        let back: Mail = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, m);
    }
}
