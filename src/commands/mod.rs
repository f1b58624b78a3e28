//! The command table and the dispatcher that applies the checks every command shares.
//!
//! A command is one file here with a `pub const` [`Command`], plus one row in [`TABLE`].
//! Handlers get the request document and an [`Invocation`]; they never see sockets.

mod aggregate;
mod api_version;
mod authenticate;
mod build_info;
mod catalog_write;
mod coll_mod;
mod coll_stats;
mod conn_pool_stats;
mod connection_status;
mod count;
mod create;
mod create_indexes;
mod create_role;
mod create_user;
mod current_op;
mod db_hash;
mod delete;
mod doc_query;
mod documents;
mod drop;
pub mod drop_connections;
mod drop_indexes;
mod drop_role;
mod drop_user;
mod explain;
mod fail_point;
mod find;
mod find_and_modify;
mod find_options;
mod get_cmd_line_opts;
mod get_log;
mod get_more;
mod get_parameter;
mod gossip;
mod hello;
mod host_info;
mod indexes;
mod insert;
mod kill_op;
mod list_collections;
mod list_commands;
mod list_databases;
mod list_indexes;
mod local_db;
mod log_rotate;
mod logout;
mod metrics;
mod ping;
mod pool_test_commands;
mod profile;
mod raft_rpc;
mod read_concern;
mod rename_collection;
mod repl_host;
mod repl_set_freeze;
mod repl_set_get_config;
mod repl_set_get_status;
mod repl_set_heartbeat;
mod repl_set_initiate;
mod repl_set_reconfig;
mod repl_set_step_down;
mod repl_set_step_up;
mod repl_set_sync_from;
pub mod retryable;
mod role_grants;
mod roles_info;
mod rotate_certificates;
mod sasl;
mod server_status;
mod sessions;
mod set_parameter;
mod shutdown;
mod sleep;
mod sort_memory;
mod tail;
pub mod ttl;
mod update;
mod update_user;
mod user_admin;
mod user_roles;
mod users_info;
mod validate;
mod validation;
mod whatsmyuri;
mod write_concern;

use crate::auth;
use crate::client::Client;
use crate::error::{type_mismatch, whole_number, Code, CommandError, CommandResult};
use crate::ops::OpInfo;
use crate::state::{ServerState, Stats};
use bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
pub use catalog_write::CatalogChange;
pub use metrics::CommandCounters;
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Everything a handler may use besides the request document.
#[derive(Clone)]
pub struct Invocation {
    pub server: Arc<ServerState>,
    pub client: Arc<Client>,
    /// The `$db` of the request.
    pub db: String,
    /// The operation's registry entry (for its cancellation token and opid).
    pub op: Arc<OpInfo>,
    /// The request set `exhaustAllowed`.
    pub exhaust_allowed: bool,
}

pub type BoxFuture = Pin<Box<dyn Future<Output = CommandResult> + Send>>;

#[derive(Clone, Copy)]
pub enum Handler {
    Sync(fn(&Invocation, &Document) -> CommandResult),
    Async(fn(Invocation, Document) -> BoxFuture),
    /// Works out a catalog change, which the dispatcher commits (replicated on a set).
    CatalogWrite(fn(&Invocation, &Document) -> CommandResult<CatalogChange>),
    /// Writes its reply as BSON bytes: for replies so large (connPoolStats with many
    /// hosts) that building and freeing a `Document` tree would dominate the command.
    SyncEncoded(fn(&Invocation, &Document) -> CommandResult<RawDocumentBuf>),
    /// Answers at once when it can (`Some`), else runs its async part: for a command
    /// that waits only in some forms (an awaitable hello), so that its other forms cost
    /// what a `Sync` handler costs (no boxed future, no copy of the request).
    SyncOrAsync(
        fn(&Invocation, &Document) -> Option<CommandResult<ReplyBody>>,
        fn(Invocation, Document) -> BoxFuture,
    ),
    /// Answers `{ok: 1}` and reads nothing (ping). A request for it that carries no
    /// argument the dispatcher acts on is answered by the connection's fast lane without
    /// coming here; see `server::fast_lane`.
    ReplyOk,
    /// Reads the request as it arrived, so that no `Document` is built for it (see
    /// [`dispatch_raw_now`]): for the most frequent commands. Answers at once when it can
    /// (`Some`), else its async part gets the request as a `Document`.
    Raw(
        fn(&Invocation, &RawDocument) -> Option<CommandResult<ReplyBody>>,
        fn(Invocation, Document) -> BoxFuture,
    ),
}

impl Handler {
    /// Whether the handler needs no `Document` of the request: the table row alone
    /// decides whether a request may skip building one.
    fn reads_raw(&self) -> bool {
        matches!(self, Handler::Raw(..) | Handler::ReplyOk)
    }
}

pub use crate::auth::privilege::Resource;

/// A (resource, action) pair a command requires; the auth layer checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privilege {
    pub resource: Resource,
    pub action: &'static str,
}

pub const fn cluster(action: &'static str) -> Privilege {
    Privilege {
        resource: Resource::Cluster,
        action,
    }
}

/// An action on the database the command runs against.
pub const fn database(action: &'static str) -> Privilege {
    Privilege {
        resource: Resource::Database,
        action,
    }
}

pub struct Command {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Shown by listCommands; empty hides the command there.
    pub help: &'static str,
    /// Must run against the `admin` database.
    pub admin_only: bool,
    /// May run before the client has logged in.
    pub allowed_before_auth: bool,
    /// May run under the localhost exception (auth on, no user yet, loopback client).
    pub allowed_by_localhost_exception: bool,
    pub privileges: &'static [Privilege],
    /// Checks the arguments before the privilege check (mongod's order); the handler
    /// may assume they passed.
    pub validate: Option<fn(&Document) -> CommandResult<()>>,
    pub handler: Handler,
    /// False for replies that carry credentials or the handshake, which mongod never
    /// compresses.
    pub compress_reply: bool,
    /// A test command: it exists only with `--setParameter enableTestCommands=1`.
    pub test_only: bool,
    /// In Stable API Version 1 under its name (not its aliases), as in mongod's list;
    /// `apiStrict: true` refuses the others.
    pub api_version_1: bool,
    /// On success the connection is closed without a reply (mongod's `shutdown`).
    pub hangs_up: bool,
    /// Fields shown as "xxx" in messages, logs and currentOp (mongod's snipForLogging),
    /// such as createUser's password.
    pub redacted_fields: &'static [&'static str],
    /// `maxTimeMS` is how long the command may wait for data (getMore on an awaitData
    /// cursor), not a time limit on the command.
    pub max_time_ms_waits: bool,
}

impl Command {
    /// A command with the common settings: any database, login required, no privileges.
    pub const fn new(name: &'static str, help: &'static str, handler: Handler) -> Command {
        Command {
            name,
            aliases: &[],
            help,
            admin_only: false,
            allowed_before_auth: false,
            allowed_by_localhost_exception: false,
            privileges: &[],
            validate: None,
            handler,
            compress_reply: true,
            test_only: false,
            api_version_1: false,
            redacted_fields: &[],
            hangs_up: false,
            max_time_ms_waits: false,
        }
    }
}

/// Every command ferrod serves.
pub static TABLE: &[&Command] = &[
    &aggregate::AGGREGATE,
    &build_info::BUILD_INFO,
    &conn_pool_stats::CONN_POOL_STATS,
    &connection_status::CONNECTION_STATUS,
    &create_role::CREATE_ROLE,
    &create_role::UPDATE_ROLE,
    &create_user::CREATE_USER,
    &count::COUNT,
    &count::DISTINCT,
    &create::CREATE,
    &coll_mod::COLL_MOD,
    &rename_collection::RENAME_COLLECTION,
    &coll_stats::COLL_STATS,
    &db_hash::DB_HASH,
    &validate::VALIDATE,
    &current_op::CURRENT_OP,
    &delete::DELETE,
    &drop::DROP,
    &drop::DROP_DATABASE,
    &list_collections::DB_STATS,
    &list_collections::LIST_COLLECTIONS,
    &create_indexes::CREATE_INDEXES,
    &list_indexes::LIST_INDEXES,
    &drop_indexes::DROP_INDEXES,
    &explain::EXPLAIN,
    &drop_role::DROP_ROLE,
    &drop_role::DROP_ALL_ROLES_FROM_DATABASE,
    &drop_user::DROP_USER,
    &drop_user::DROP_ALL_USERS_FROM_DATABASE,
    &drop_connections::DROP_CONNECTIONS,
    &fail_point::CONFIGURE_FAIL_POINT,
    &find::FIND,
    &find_and_modify::FIND_AND_MODIFY,
    &get_more::GET_MORE,
    &get_more::KILL_CURSORS,
    &fail_point::WAIT_FOR_FAIL_POINT,
    &get_cmd_line_opts::GET_CMD_LINE_OPTS,
    &get_log::GET_LOG,
    &get_parameter::GET_PARAMETER,
    &hello::HELLO,
    &host_info::HOST_INFO,
    &insert::INSERT,
    &kill_op::KILL_OP,
    &list_commands::LIST_COMMANDS,
    &list_databases::LIST_DATABASES,
    &profile::PROFILE,
    &authenticate::AUTHENTICATE,
    &log_rotate::LOG_ROTATE,
    &rotate_certificates::ROTATE_CERTIFICATES,
    &logout::LOGOUT,
    &ping::PING,
    &role_grants::GRANT_PRIVILEGES_TO_ROLE,
    &role_grants::REVOKE_PRIVILEGES_FROM_ROLE,
    &role_grants::GRANT_ROLES_TO_ROLE,
    &role_grants::REVOKE_ROLES_FROM_ROLE,
    &roles_info::ROLES_INFO,
    &sasl::SASL_START,
    &sasl::SASL_CONTINUE,
    &pool_test_commands::POOL_CHECKOUT,
    &pool_test_commands::RUNTIME_STATS,
    &raft_rpc::RAFT_VOTE,
    &raft_rpc::RAFT_APPEND,
    &raft_rpc::RAFT_SNAPSHOT,
    &repl_set_freeze::REPL_SET_FREEZE,
    &repl_set_get_config::REPL_SET_GET_CONFIG,
    &repl_set_get_status::REPL_SET_GET_STATUS,
    &repl_set_heartbeat::REPL_SET_HEARTBEAT,
    &repl_set_initiate::REPL_SET_INITIATE,
    &repl_set_reconfig::REPL_SET_RECONFIG,
    &repl_set_step_down::REPL_SET_STEP_DOWN,
    &repl_set_step_up::REPL_SET_STEP_UP,
    &repl_set_sync_from::REPL_SET_SYNC_FROM,
    &server_status::SERVER_STATUS,
    &sessions::END_SESSIONS,
    &sessions::REFRESH_SESSIONS,
    &sessions::KILL_SESSIONS,
    &sessions::START_SESSION,
    &sessions::KILL_ALL_SESSIONS,
    &sessions::KILL_ALL_SESSIONS_BY_PATTERN,
    &set_parameter::SET_PARAMETER,
    &shutdown::SHUTDOWN,
    &sleep::SLEEP,
    &update::UPDATE,
    &update_user::UPDATE_USER,
    &user_roles::GRANT_ROLES_TO_USER,
    &user_roles::REVOKE_ROLES_FROM_USER,
    &users_info::USERS_INFO,
    &whatsmyuri::WHATSMYURI,
];

static BY_NAME: LazyLock<HashMap<&'static str, &'static Command>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for cmd in TABLE {
        map.insert(cmd.name, *cmd);
        for alias in cmd.aliases {
            map.insert(*alias, *cmd);
        }
    }
    map
});

pub(crate) use crate::error::shell_format;
pub use crate::sessions::LOGICAL_SESSION_TIMEOUT_MINUTES;
pub use hello::exhaust_next;
pub use set_parameter::apply as apply_parameters;

pub fn lookup(name: &str) -> Option<&'static Command> {
    BY_NAME.get(name).copied()
}

/// Whether this server serves `command`: test commands only when enabled at startup.
pub fn is_available(server: &ServerState, command: &Command) -> bool {
    !command.test_only || server.params.get_bool(crate::params::ENABLE_TEST_COMMANDS)
}

/// Whether a request may be answered without coming here (the fast lane): not while a
/// fail point could name it, since the dispatcher is where fail points apply.
pub fn may_bypass_dispatcher(server: &ServerState) -> bool {
    !server.failpoints.fail_command.is_active()
}

/// Arguments any command accepts besides its own (SPEC section 3, and what drivers add).
pub const GENERIC_ARGUMENTS: &[&str] = &[
    "$db",
    "lsid",
    "$clusterTime",
    "$readPreference",
    "$audit",
    "$client",
    "$configServerState",
    "$topologyTime",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "comment",
    "maxTimeMS",
    "readConcern",
    "writeConcern",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "stmtId",
    "databaseVersion",
    "shardVersion",
    "mayBypassWriteBlocking",
];

pub fn is_generic_argument(name: &str) -> bool {
    GENERIC_ARGUMENTS.contains(&name)
}

/// A reply body as a handler made it.
#[derive(Debug)]
pub enum ReplyBody {
    Document(Document),
    /// From a [`Handler::SyncEncoded`] handler.
    Encoded(RawDocumentBuf),
}

impl ReplyBody {
    /// The body as a `Document` (decoding an encoded one), for callers inside the server.
    pub fn into_document(self) -> Document {
        match self {
            ReplyBody::Document(d) => d,
            ReplyBody::Encoded(raw) => raw.to_document().unwrap_or_default(),
        }
    }
}

/// What the connection sends back: the reply body and whether it may be compressed.
pub struct Reply {
    pub body: ReplyBody,
    pub compress: bool,
    /// Close the connection instead of sending `body`.
    pub hang_up: bool,
}

/// The database a request names in `$db`.
fn request_db(value: Option<Bson>) -> CommandResult<String> {
    match value {
        None => Err(CommandError::new(
            Code::Location40571,
            "OP_MSG requests require a $db argument",
        )),
        Some(Bson::String(db)) if !db.is_empty() => Ok(db),
        Some(Bson::String(_)) => Err(CommandError::new(
            Code::InvalidNamespace,
            "Invalid database name: ''",
        )),
        // mongod reads `$db` with BSONElement::checkAndGetStringData, whose type check
        // raises location code 13111.
        Some(other) => Err(CommandError::new(
            Code::Location13111,
            format!(
                "wrong type for field ($db) {} != string",
                crate::error::type_name(&other)
            ),
        )),
    }
}

fn max_time(value: Option<&Bson>) -> CommandResult<Option<Duration>> {
    let ms = match value {
        None | Some(Bson::Null) => return Ok(None),
        Some(value) => {
            whole_number(value).ok_or_else(|| type_mismatch("maxTimeMS", value, "int"))?
        }
    };
    if !(0..=i32::MAX as i64).contains(&ms) {
        return Err(CommandError::new(
            Code::BadValue,
            format!("{ms} value for maxTimeMS is out of range [0, 2147483647]"),
        ));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

/// Runs one command request and builds its reply, errors included.
pub async fn dispatch(
    server: &Arc<ServerState>,
    client: &Arc<Client>,
    body: Document,
    exhaust_allowed: bool,
) -> Reply {
    dispatch_request(server, client, body, None, exhaust_allowed).await
}

/// [`dispatch`] for a request whose `body` leaves out generic arguments that `raw_body`
/// (the body as received) still holds; see [`crate::wire::ELIDED_ARGUMENTS`].
pub async fn dispatch_request(
    server: &Arc<ServerState>,
    client: &Arc<Client>,
    body: Document,
    raw_body: Option<Vec<u8>>,
    exhaust_allowed: bool,
) -> Reply {
    match dispatch_now(server, client, body, raw_body, exhaust_allowed) {
        Dispatched::Ready(reply) => reply,
        Dispatched::Pending(reply) => reply.await,
    }
}

/// A request's reply, or the future that makes it when its command waits.
pub enum Dispatched<'a> {
    Ready(Reply),
    Pending(Pin<Box<dyn Future<Output = Reply> + Send + 'a>>),
}

/// [`dispatch_request`] as far as it goes without waiting. Every request takes the same
/// checks; a command whose handler answers at once (and that no fail point holds up) is
/// answered here, without building a future: a future holding the whole dispatcher's
/// state was several KB, allocated and copied for every request.
pub fn dispatch_now<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    body: Document,
    raw_body: Option<Vec<u8>>,
    exhaust_allowed: bool,
) -> Dispatched<'a> {
    // The table's own spelling of the name (no copy per request); an unknown one is
    // copied for its error message.
    let first = body.keys().next().map_or("", String::as_str);
    let (name, command) = match BY_NAME.get_key_value(first) {
        Some((name, c)) => (
            Cow::Borrowed(*name),
            Some(*c).filter(|c| is_available(server, c)),
        ),
        None => (Cow::Owned(first.to_owned()), None),
    };
    let args = GenericArgs::of(&body);
    let request = Request::Decoded { body, raw_body };
    run(
        server,
        client,
        &name,
        command,
        request,
        args,
        exhaust_allowed,
    )
}

/// [`dispatch_now`] for an OP_MSG body as it arrived (`body`, one section, no flags),
/// when the table says its command needs no `Document` of it ([`Handler::reads_raw`]):
/// the body is walked once (after the depth check), checked as decoding would check it,
/// and the generic arguments the dispatcher acts on are read on the way. None, having done
/// nothing, for any other request, and for anything the walk does not accept with
/// certainty (malformed or unusual BSON, a repeated field): decoding it gives the same
/// reply or the right error.
pub fn dispatch_raw_now<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    body: &[u8],
) -> Option<Dispatched<'a>> {
    let raw = RawDocument::from_bytes(body).ok()?;
    let mut elements = raw.iter();
    let (first, value) = elements.next()?.ok()?;
    let (name, command) = BY_NAME.get_key_value(first)?;
    if !command.handler.reads_raw() || !is_available(server, command) {
        return None;
    }
    // The walk below recurses: anything nested too deep is left to the decoder.
    if crate::wire::depth::check_raw(body, crate::wire::depth::max_bson_depth())
        != crate::wire::depth::RawDepth::Within
    {
        return None;
    }
    crate::wire::check_value(value)?;
    let mut args = GenericArgs::default();
    let mut seen: [&str; 16] = [""; 16];
    for (n, element) in elements.enumerate() {
        let (key, value) = element.ok()?;
        // Decoding keeps the last of repeated fields, a raw lookup the first.
        if n >= seen.len() || key == first || seen[..n].contains(&key) {
            return None;
        }
        seen[n] = key;
        crate::wire::check_value(value)?;
        args.note(key, value)?;
    }
    let request = Request::Raw(raw);
    Some(run(
        server,
        client,
        name,
        Some(*command),
        request,
        args,
        false,
    ))
}

/// The generic arguments the dispatcher's checks read, taken from the request once.
#[derive(Default)]
struct GenericArgs {
    db: Option<Bson>,
    api_version: Option<Bson>,
    api_strict: Option<Bson>,
    api_deprecation_errors: Option<Bson>,
    max_time_ms: Option<Bson>,
}

impl GenericArgs {
    fn of(body: &Document) -> GenericArgs {
        let get = |key| body.get(key).cloned();
        GenericArgs {
            db: get("$db"),
            api_version: get("apiVersion"),
            api_strict: get("apiStrict"),
            api_deprecation_errors: get("apiDeprecationErrors"),
            max_time_ms: get("maxTimeMS"),
        }
    }

    /// Keeps `value` if `key` is one of them; None when it does not convert.
    fn note(&mut self, key: &str, value: RawBsonRef<'_>) -> Option<()> {
        let slot = match key {
            "$db" => &mut self.db,
            "apiVersion" => &mut self.api_version,
            "apiStrict" => &mut self.api_strict,
            "apiDeprecationErrors" => &mut self.api_deprecation_errors,
            "maxTimeMS" => &mut self.max_time_ms,
            _ => return Some(()),
        };
        *slot = Some(Bson::try_from(value).ok()?);
        Some(())
    }
}

/// A request as the dispatcher gets it.
/// The arguments [`retryable::check_session_args`] reads besides `lsid`.
const TRANSACTION_ARGUMENTS: [&str; 3] = ["txnNumber", "autocommit", "startTransaction"];

enum Request<'r> {
    /// Decoded by the wire layer; `raw_body` when the decoder left arguments out.
    Decoded {
        body: Document,
        raw_body: Option<Vec<u8>>,
    },
    /// As it arrived, for a handler that reads it so ([`dispatch_raw_now`]).
    Raw(&'r RawDocument),
}

impl Request<'_> {
    /// The request as a `Document`, for what needs one off the common path (a
    /// command's argument check, an error message).
    fn document(&self) -> Cow<'_, Document> {
        match self {
            Request::Decoded { body, .. } => Cow::Borrowed(body),
            Request::Raw(raw) => Cow::Owned(decode_raw(raw.as_bytes())),
        }
    }

    /// The request as sent, every argument in place.
    fn full_command(&self) -> Cow<'_, Document> {
        match self {
            Request::Decoded { body, raw_body } => {
                crate::wire::full_command(body, raw_body.as_deref())
            }
            Request::Raw(raw) => {
                Cow::Owned(crate::wire::decode_document(raw.as_bytes()).unwrap_or_default())
            }
        }
    }

    fn contains_key(&self, key: &str) -> bool {
        match self {
            Request::Decoded { body, .. } => body.contains_key(key),
            Request::Raw(raw) => matches!(raw.get(key), Ok(Some(_))),
        }
    }
}

/// A raw request decoded as the wire layer decodes it (without `lsid` and
/// `$clusterTime`), for the part of a raw handler that takes a `Document`.
fn decode_raw(raw: &[u8]) -> Document {
    match crate::wire::decode_eliding(raw) {
        Some((body, _)) => body,
        None => crate::wire::decode_document(raw).unwrap_or_default(),
    }
}

/// The checks, the handler and the reply, for either kind of request.
fn run<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    name: &str,
    command: Option<&'static Command>,
    request: Request<'_>,
    args: GenericArgs,
    exhaust_allowed: bool,
) -> Dispatched<'a> {
    let prepared = prepare(
        server,
        client,
        name,
        command,
        request,
        args,
        exhaust_allowed,
    );
    let mut prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return Dispatched::Ready(finish(server, command, Err(e))),
    };
    if let Some(result) = run_now(&mut prepared) {
        return Dispatched::Ready(finish(server, command, result));
    }
    Dispatched::Pending(Box::pin(async move {
        let result = run_waiting(prepared).await;
        finish(server, command, result)
    }))
}

/// The reply as sent, with the command's counters and whether to hang up.
fn finish(
    server: &ServerState,
    command: Option<&'static Command>,
    result: CommandResult<ReplyBody>,
) -> Reply {
    let compress = command.is_none_or(|c| c.compress_reply);
    server.stats.commands.count(command, result.is_err());
    let hang_up = match &result {
        Ok(_) => command.is_some_and(|c| c.hangs_up),
        // Only failCommand's closeConnection fails with 50985: close instead of replying.
        Err(e) => e.code == Code::Location50985,
    };
    let body = match result {
        Ok(ReplyBody::Document(reply)) => ReplyBody::Encoded(encode_reply(server, reply)),
        Ok(ReplyBody::Encoded(mut reply)) => {
            if !crate::wire::depth::has_top_level_key(reply.as_bytes(), b"ok") {
                reply.append("ok", 1.0);
            }
            ReplyBody::Encoded(server.clock.stamp_encoded_reply(reply))
        }
        Err(err) => ReplyBody::Encoded(encode_reply(server, err.to_document())),
    };
    Reply {
        body,
        compress,
        hang_up,
    }
}

/// A handler's reply as sent: its fields, then `ok` unless it has one, the
/// `topologyVersion` of a state-change error, `$clusterTime` and `operationTime`. Written
/// as BSON at once, so the cluster time is never built as a `Document` of its own.
fn encode_reply(server: &ServerState, mut reply: Document) -> RawDocumentBuf {
    if server.repl.is_some() {
        // A state-change error's topologyVersion comes after `ok`.
        if !reply.contains_key("ok") {
            reply.insert("ok", 1.0);
        }
        crate::repl::stamp_state_change_error(server, &mut reply);
    }
    let mut bytes = Vec::with_capacity(256);
    crate::wire::raw::write_document(&reply, &mut bytes);
    bytes.pop(); // the terminating NUL, written again by finish_document
    if !reply.contains_key("ok") {
        crate::wire::raw::write_element(b"ok", &Bson::Double(1.0), &mut bytes).expect("a double");
    }
    server.clock.write_reply_times(&mut bytes);
    crate::wire::raw::finish_document(0, &mut bytes);
    RawDocumentBuf::from_bytes(bytes).expect("a document just written")
}

/// A request that passed the dispatcher's checks, registered for currentOp, with its
/// handler still to run.
struct Prepared<'a> {
    server: &'a Arc<ServerState>,
    command: &'static Command,
    /// The registry keeps the command for currentOp; the handler borrows it from there.
    guard: crate::ops::OpGuard<'a>,
    invocation: Invocation,
    time_limit: Option<Duration>,
    /// failCommand's data, when it fires for this request.
    fail_data: Option<Document>,
    /// A `SyncOrAsync` or `Raw` handler's synchronous part ran and left the request to
    /// its async part.
    tried_now: bool,
    /// The registry holds the request as it arrived (`raw_body`), not decoded.
    raw: bool,
}

impl Prepared<'_> {
    /// The request as a handler that takes a `Document` gets it.
    fn document(&self) -> Cow<'_, Document> {
        let info = &self.guard.info;
        match (&info.raw_body, self.raw) {
            (Some(raw), true) => Cow::Owned(decode_raw(raw)),
            _ => Cow::Borrowed(&info.command),
        }
    }

    /// The request as a [`Handler::Raw`] handler gets it.
    fn raw_document(&self) -> Cow<'_, RawDocument> {
        let info = &self.guard.info;
        match (&info.raw_body, self.raw) {
            (Some(raw), true) => match RawDocument::from_bytes(raw) {
                Ok(raw) => Cow::Borrowed(raw),
                Err(_) => Cow::Owned(RawDocumentBuf::new()),
            },
            _ => Cow::Owned(RawDocumentBuf::from_document(&info.command).unwrap_or_default()),
        }
    }

    /// Runs a `Raw` handler's synchronous part.
    fn raw_now(
        &mut self,
        now: fn(&Invocation, &RawDocument) -> Option<CommandResult<ReplyBody>>,
    ) -> Option<CommandResult<ReplyBody>> {
        self.tried_now = true;
        now(&self.invocation, &self.raw_document())
    }
}

/// The checks every command takes, in mongod's order, then its registration.
fn prepare<'a>(
    server: &'a Arc<ServerState>,
    client: &Arc<Client>,
    name: &str,
    command: Option<&'static Command>,
    request: Request<'_>,
    args: GenericArgs,
    exhaust_allowed: bool,
) -> CommandResult<Prepared<'a>> {
    let db = request_db(args.db)?;
    let Some(command) = command else {
        return Err(CommandError::new(
            Code::CommandNotFound,
            format!("no such command: '{name}'"),
        ));
    };
    Stats::add(&server.stats.op_command, 1);
    api_version::check(
        args.api_version.as_ref(),
        args.api_strict.as_ref(),
        args.api_deprecation_errors.as_ref(),
        command,
        name,
    )?;
    if command.admin_only && db != "admin" {
        return Err(CommandError::new(
            Code::Unauthorized,
            format!(
                "{} may only be run against the admin database.",
                command.name
            ),
        ));
    }
    let access = check_authentication(server, client, command)?;
    if let Some(validate) = command.validate {
        validate(&request.document())?;
    }
    match &request {
        Request::Decoded { body, raw_body } => {
            retryable::check_session_args(server, command, body, raw_body.as_deref())?
        }
        // Decoded only when it holds a transaction argument (hello and ping do not); an
        // `lsid` alone only marks its session used.
        Request::Raw(raw)
            if TRANSACTION_ARGUMENTS
                .iter()
                .any(|a| request.contains_key(a)) =>
        {
            retryable::check_session_args(
                server,
                command,
                &request.document(),
                Some(raw.as_bytes()),
            )?
        }
        Request::Raw(raw) => {
            if let Ok(Some(bson::RawBsonRef::Document(lsid))) = raw.get("lsid") {
                server.sessions.touch_raw(lsid);
            }
        }
    }
    if access == Access::NeedsPrivileges {
        check_privileges(server, client, command, &db, &request)?;
    }
    match &request {
        Request::Decoded { body, raw_body } => {
            gossip::gossip_in(server, client, body, raw_body.as_deref())?
        }
        Request::Raw(raw) => gossip::gossip_in(server, client, &EMPTY, Some(raw.as_bytes()))?,
    }
    let time_limit = max_time(args.max_time_ms.as_ref())?.filter(|_| !command.max_time_ms_waits);

    // The one place failCommand applies: to every command that reaches its handler.
    fail_point::note_internal_client(client, command, || request.contains_key("internalClient"));
    let (body, raw_body, raw) = match request {
        Request::Decoded { body, raw_body } => (body, raw_body, false),
        // A clone of an empty document: `Document::new()` draws a hash seed from a
        // counter all threads share.
        Request::Raw(raw) => (EMPTY.clone(), Some(raw.as_bytes().to_vec()), true),
    };
    let guard = server
        .ops
        .register(client, body, raw_body, command.redacted_fields);
    let invocation = Invocation {
        server: server.clone(),
        client: client.clone(),
        db,
        op: guard.info.clone(),
        exhaust_allowed,
    };
    let fail_data = fail_point::evaluate(&invocation, command);
    Ok(Prepared {
        server,
        command,
        guard,
        invocation,
        time_limit,
        fail_data,
        tried_now: false,
        raw,
    })
}

/// An empty document, for what reads the body of a raw request (which it reads from the
/// raw body instead), and to clone.
static EMPTY: LazyLock<Document> = LazyLock::new(Document::new);

/// Runs the handler when it answers without waiting; None leaves the request to
/// [`run_waiting`].
fn run_now(p: &mut Prepared<'_>) -> Option<CommandResult<ReplyBody>> {
    if p.fail_data.is_some() {
        return None;
    }
    let result = match p.command.handler {
        Handler::ReplyOk => Ok(ReplyBody::Document(EMPTY.clone())),
        Handler::Sync(f) => f(&p.invocation, &p.document()).map(ReplyBody::Document),
        Handler::SyncEncoded(f) => f(&p.invocation, &p.document()).map(ReplyBody::Encoded),
        Handler::SyncOrAsync(now, _) => {
            p.tried_now = true;
            now(&p.invocation, &p.document())?
        }
        Handler::Raw(now, _) => p.raw_now(now)?,
        Handler::Async(_) | Handler::CatalogWrite(_) => return None,
    };
    let inv = &p.invocation;
    log_if_slow(inv, p.command, inv.op.started.elapsed(), &result);
    Some(result)
}

/// The rest of a request that waits: a fail point holding it up, or an async handler.
async fn run_waiting(mut p: Prepared<'_>) -> CommandResult<ReplyBody> {
    let mut fail_labels = None;
    if let Some(data) = p.fail_data.take() {
        let fut = fail_point::block(p.invocation.clone(), p.command.name, data.clone());
        Box::pin(bounded(p.server, &p.invocation, p.time_limit, fut)).await?;
        fail_labels = fail_point::fail(&p.invocation, p.command.name, &data)?.error_labels;
    }
    let ready = match p.command.handler {
        Handler::SyncOrAsync(now, _) if !p.tried_now => now(&p.invocation, &p.document()),
        Handler::Raw(now, _) if !p.tried_now => p.raw_now(now),
        _ => None,
    };
    let Prepared {
        server,
        command,
        ref invocation,
        time_limit,
        ..
    } = p;
    let result = match command.handler {
        Handler::ReplyOk => Ok(ReplyBody::Document(Document::new())),
        Handler::Sync(f) => f(invocation, &p.document()).map(ReplyBody::Document),
        Handler::SyncEncoded(f) => f(invocation, &p.document()).map(ReplyBody::Encoded),
        Handler::SyncOrAsync(_, _) | Handler::Raw(_, _) if ready.is_some() => {
            ready.expect("checked above")
        }
        Handler::Async(f) | Handler::SyncOrAsync(_, f) | Handler::Raw(_, f) => {
            let fut = f(invocation.clone(), p.document().into_owned());
            Box::pin(bounded(server, invocation, time_limit, fut))
                .await
                .map(|mut reply| {
                    // The document writes are async handlers: failCommand's
                    // writeConcernError follows a write that ran (drivers retry it).
                    fail_point::write_concern_error(invocation, command, &mut reply);
                    ReplyBody::Document(reply)
                })
        }
        Handler::CatalogWrite(f) => {
            let fut = catalog_write::run(invocation, &p.guard.info.command, f);
            Box::pin(bounded(server, invocation, time_limit, fut))
                .await
                .map(|mut reply| {
                    fail_point::write_concern_error(invocation, command, &mut reply);
                    ReplyBody::Document(reply)
                })
        }
    };
    let result = result.map_err(|e| fail_point::with_labels(e, fail_labels.as_ref()));
    // The operation's start (taken when it was registered) times it: one clock read.
    log_if_slow(
        invocation,
        command,
        invocation.op.started.elapsed(),
        &result,
    );
    result
}

/// Runs a command's future until it ends, its maxTimeMS passes or it is killed.
async fn bounded(
    server: &ServerState,
    invocation: &Invocation,
    time_limit: Option<Duration>,
    fut: impl Future<Output = CommandResult>,
) -> CommandResult {
    let limited = async {
        match time_limit {
            Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
                Err(CommandError::new(
                    Code::MaxTimeMSExpired,
                    "operation exceeded time limit",
                ))
            }),
            None => fut.await,
        }
    };
    let cancel = invocation.op.cancellation();
    tokio::select! {
        result = limited => result,
        _ = cancel.cancelled() => Err(interruption(server)),
    }
}

/// The error an operation killed by killOp, or by shutdown, ends with.
fn interruption(server: &ServerState) -> CommandError {
    if server.shutdown.is_cancelled() {
        CommandError::new(Code::InterruptedAtShutdown, "interrupted at shutdown")
    } else {
        CommandError::new(Code::Interrupted, "operation was interrupted")
    }
}

/// What the privilege check still has to do after the authentication check.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    /// No check: authorization is off, or the localhost exception lets this through.
    Granted,
    NeedsPrivileges,
}

/// mongod's "requires authentication" step (after the admin-only check).
fn check_authentication(
    server: &ServerState,
    client: &Client,
    command: &Command,
) -> CommandResult<Access> {
    if !auth::enforced(server) {
        return Ok(Access::Granted);
    }
    if client.auth.lock().user.is_some() {
        return Ok(Access::NeedsPrivileges);
    }
    if command.allowed_before_auth {
        return Ok(Access::NeedsPrivileges);
    }
    if command.allowed_by_localhost_exception && auth::localhost_exception(server, client) {
        return Ok(Access::Granted);
    }
    Err(CommandError::new(
        Code::Unauthorized,
        format!("command {} requires authentication", command.name),
    ))
}

/// The privilege check: every (resource, action) the command declares.
fn check_privileges(
    server: &ServerState,
    client: &Client,
    command: &Command,
    db: &str,
    request: &Request<'_>,
) -> CommandResult<()> {
    let required: Vec<_> = command
        .privileges
        .iter()
        .map(|p| (auth::required_resource(p.resource, db), p.action))
        .collect();
    if auth::is_authorized(server, client, &required) {
        return Ok(());
    }
    Err(CommandError::new(
        Code::Unauthorized,
        format!(
            "not authorized on {db} to execute command {}",
            shell_format(&Bson::Document(snip_for_logging(
                command,
                &request.full_command()
            )))
        ),
    ))
}

/// The command as it may be shown in messages and logs (see `Command::redacted_fields`).
fn snip_for_logging(command: &Command, body: &Document) -> Document {
    crate::ops::redacted(body, command.redacted_fields)
}

/// mongod's "Slow query" line (id 51803). The command, `comment` included, is logged as
/// structured attributes, as mongod does.
fn log_if_slow(
    inv: &Invocation,
    command: &Command,
    elapsed: Duration,
    result: &CommandResult<ReplyBody>,
) {
    let op_stats = crate::op_counters::take(inv.op.opid).unwrap_or_default();
    let millis = elapsed.as_millis() as u64;
    // 0 (or less) logs every command.
    if (millis as i64) < profile::slow_ms(&inv.server) {
        return;
    }
    let body = inv.op.full_command();
    let command_json = Bson::Document(snip_for_logging(command, &body)).into_relaxed_extjson();
    let ctx = format!("conn{}", inv.client.id);
    let ns = format!("{}.$cmd", inv.db);
    // Left out when the client gave no application name, as mongod does.
    let app_name = inv.client.app_name();
    let remote = inv.client.remote.to_string();
    // Error fields are recorded only for failed commands (a None field is left out).
    let error = result.as_ref().err();
    tracing::info!(
        target: "COMMAND",
        id = 51803,
        ctx,
        r#type = "command",
        ns,
        appName = app_name.as_deref(),
        command = %command_json,
        commandName = command.name,
        planSummary = op_stats.plan,
        docsExamined = op_stats.plan.map(|_| op_stats.docs_examined),
        nreturned = op_stats.nreturned,
        numYields = 0,
        ok = error.map(|_| 0),
        errMsg = error.map(|e| e.message.as_str()),
        errName = error.map(|e| e.code.name()),
        errCode = error.map(|e| e.code.number()),
        remote,
        durationMillis = millis,
        "Slow query"
    );
}
