//! `org.gadgetd.Agent1.Manager`: starting, attaching to, stopping and
//! listing runs.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gadgetd_dbus::stream::{self, GadgetInfo, Header};
use gadgetd_dbus::types::{RunSummary, options};
use zbus::message::Header as MsgHeader;
use zbus::zvariant::{OwnedFd, OwnedObjectPath, OwnedValue};
use zbus::{Connection, fdo, interface};

use super::attach::Attacher;
use super::auth::Caller;
use super::bus::Connections;
use super::detached::RateLimit;
use super::ownership::{self, Access};
use super::run::{self, RunHandle, RunSpec};
use crate::journal::Journal;
use crate::state::Store;
use gadgetd_runtime::{Gadget, GadgetError};

pub use super::authz::{ACTION_READ, ACTION_RUN, Authorizer};

/// State shared by every interface and connection.
pub struct Agent {
    pub runs: Mutex<BTreeMap<String, Arc<RunHandle>>>,
    pub conns: Connections,
    pub auth: Authorizer,
    pub containers: Arc<gadgetd_containers::Registry>,
    /// The image store and registries (set once at start).
    pub images: std::sync::OnceLock<Arc<gadgetd_images::service::ImageService>>,
    /// The state database (runs survive restarts through it).
    pub state: Store,
    /// Where detached runs log their events.
    pub journal: Journal,
    pub log_rate: RateLimit,
    /// What one caller may hold at once (docs/security.md).
    pub limits: super::limits::Limits,
}

impl Agent {
    pub fn new(
        auth: Authorizer,
        state: Store,
        journal: Journal,
        log_rate: RateLimit,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            runs: Mutex::new(BTreeMap::new()),
            conns: Connections::default(),
            auth,
            containers: gadgetd_containers::Registry::new(),
            images: std::sync::OnceLock::new(),
            state,
            journal,
            log_rate,
            limits: Default::default(),
        })
    }

    pub fn images(&self) -> &Arc<gadgetd_images::service::ImageService> {
        self.images
            .get()
            .expect("the image service is set at start")
    }

    /// A run by id, unique id prefix, or name.
    pub fn find(&self, key: &str) -> fdo::Result<Arc<RunHandle>> {
        let runs = self.runs.lock().unwrap();
        if let Some(r) = runs.get(key) {
            return Ok(r.clone());
        }
        let matches: Vec<_> = runs
            .values()
            .filter(|r| r.name == key || (key.len() >= 4 && r.id.starts_with(key)))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(fdo::Error::UnknownObject(format!(
                "no run with id or name `{key}` (see `gadgetctl list`)"
            ))),
            _ => Err(fdo::Error::InvalidArgs(format!(
                "`{key}` matches several runs; use more of the id"
            ))),
        }
    }

    pub fn live_runs(&self) -> usize {
        self.runs
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.is_live())
            .count()
    }

    /// Stops every run and waits (up to `grace`) for their programs to detach.
    pub async fn stop_all(&self, grace: Duration) {
        let runs: Vec<_> = self.runs.lock().unwrap().values().cloned().collect();
        for r in &runs {
            r.stop(stream::reason::SHUTDOWN);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while runs.iter().any(|r| r.is_live()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub struct Manager {
    pub agent: Arc<Agent>,
}

fn gadget_error(e: GadgetError) -> fdo::Error {
    match e {
        GadgetError::Load(_)
        | GadgetError::Program { .. }
        | GadgetError::Reader { .. }
        | GadgetError::Io(_) => fdo::Error::Failed(e.to_string()),
        _ => fdo::Error::InvalidArgs(e.to_string()),
    }
}

fn new_run_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the kernel's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a definition larger than [`super::limits::MAX_DEFINITION_BYTES`].
pub(super) fn check_definition(definition: &str) -> fdo::Result<()> {
    let max = super::limits::MAX_DEFINITION_BYTES;
    if definition.len() > max {
        return Err(fdo::Error::InvalidArgs(format!(
            "the definition is {} bytes, larger than {max} bytes, the limit",
            definition.len()
        )));
    }
    Ok(())
}

pub(super) struct ParsedOptions {
    timeout: Option<Duration>,
    name: Option<String>,
    pub(super) containers: gadgetd_containers::Selector,
    detach: bool,
    /// Export the gadget's metrics (`metrics` option).
    pub(super) metrics: bool,
    /// sha256 of the stored object of a detached run (state database).
    object: Option<String>,
    pub(super) kinds: super::kind_options::KindOptions,
    /// The options that make the run's scope (containers, kind options), as
    /// given: stored so a restored run is scoped the same.
    scope: HashMap<String, OwnedValue>,
    /// Notes for the stream header (image layers not used).
    pub(super) notes: Vec<String>,
    /// The caller's own output for its event lines (`output-fd`).
    output: Option<super::direct_out::Output>,
}

pub(super) fn parse_options(opts: &HashMap<String, OwnedValue>) -> fdo::Result<ParsedOptions> {
    let mut out = ParsedOptions {
        timeout: None,
        name: None,
        containers: gadgetd_containers::Selector::default(),
        detach: false,
        metrics: false,
        object: None,
        kinds: Default::default(),
        scope: HashMap::new(),
        notes: Vec::new(),
        output: None,
    };
    for (key, value) in opts {
        let scoping = gadgetd_containers::selector::KEYS.contains(&key.as_str());
        // `metrics` is kept with the scope too: a restored run exports again.
        if scoping || super::kind_options::KEYS.contains(&key.as_str()) || key == options::METRICS {
            let copy = value
                .try_clone()
                .map_err(|e| fdo::Error::InvalidArgs(format!("option {key}: {e}")))?;
            out.scope.insert(key.clone(), copy);
        }
        if out.kinds.accept(key, value)? {
            continue;
        }
        match key.as_str() {
            options::TIMEOUT_MS => {
                let ms = u64::try_from(value).map_err(|_| {
                    fdo::Error::InvalidArgs(format!("option {key} must be a u64 (t)"))
                })?;
                out.timeout = (ms > 0).then(|| Duration::from_millis(ms));
            }
            options::NAME => {
                let name: String = value
                    .try_clone()
                    .ok()
                    .and_then(|v| String::try_from(v).ok())
                    .ok_or_else(|| {
                        fdo::Error::InvalidArgs(format!("option {key} must be a string (s)"))
                    })?;
                out.name = Some(name);
            }
            k if gadgetd_containers::selector::KEYS.contains(&k) => out.containers.set(k, value)?,
            options::DETACH => out.detach = super::options_ext::flag(key, value)?,
            options::METRICS => out.metrics = super::options_ext::flag(key, value)?,
            options::OUTPUT_FD => out.output = Some(super::options_ext::output(key, value)?),
            other => return Err(fdo::Error::InvalidArgs(format!("unknown option `{other}`"))),
        }
    }
    if out.detach && out.output.is_some() {
        return Err(fdo::Error::InvalidArgs(format!(
            "option {} cannot be used with {}: a detached run's events go to the journal \
             (read them with Logs)",
            options::OUTPUT_FD,
            options::DETACH
        )));
    }
    Ok(out)
}

impl Manager {
    /// The run `id` and who is asking, once the caller may do `action` and
    /// has `access` to that run (its owner, root, or per `ownership`).
    async fn run_for(
        &self,
        id: &str,
        conn: &Connection,
        hdr: &MsgHeader<'_>,
        action: &str,
        access: Access,
    ) -> fdo::Result<(Arc<RunHandle>, Caller)> {
        let handle = self.agent.find(id)?;
        let caller = ownership::check(&self.agent.auth, conn, hdr, action, &handle, access).await?;
        Ok((handle, caller))
    }
    /// Loads `gadget` and starts its run; `first` is the caller's stream.
    #[allow(clippy::too_many_arguments)]
    async fn start_run(
        &self,
        gadget: Gadget,
        gadget_name: String,
        image: String,
        digest: String,
        params: BTreeMap<String, String>,
        opts: ParsedOptions,
        caller: Caller,
        detached: bool,
        first: Option<Attacher>,
    ) -> fdo::Result<Arc<RunHandle>> {
        let id = new_run_id();
        let scope = super::scope::encode(&opts.scope).map_err(fdo::Error::Failed)?;
        let name = match opts.name {
            Some(n) => {
                if self
                    .agent
                    .runs
                    .lock()
                    .unwrap()
                    .values()
                    .any(|r| r.name == n && r.is_live())
                {
                    return Err(fdo::Error::InvalidArgs(format!(
                        "a live run is already named `{n}`"
                    )));
                }
                n
            }
            None => format!("{gadget_name}-{}", &id[..6]),
        };
        let mut header = Header {
            run_id: id.clone(),
            gadget: GadgetInfo {
                name: gadget_name,
                description: gadget.description(),
                image: image.clone(),
                digest: digest.clone(),
            },
            fields: gadget.fields(),
            datasources: gadget.datasource_infos(),
            programs: Vec::new(),
            notes: opts.notes.clone(),
        };
        let (run_opts, plan) =
            super::scope::run_options(&self.agent, params.clone(), opts.containers, &opts.kinds);
        let started = std::time::Instant::now();
        let running = tokio::task::spawn_blocking(move || gadget.start(&run_opts))
            .await
            .map_err(|e| fdo::Error::Failed(format!("loader task failed: {e}")))?
            .map_err(gadget_error)?;
        tracing::info!(run = %id, image = %image, uid = caller.uid, load_ms = started.elapsed().as_millis() as u64, "run started");
        // Loading code (object parsing, CO-RE, aya's loader) ran once for this
        // run. Off the async workers: reading smaps walks every mapping.
        tokio::task::spawn_blocking(|| super::code_pages::release_logged("a load"));
        super::scope::follow(&self.agent, plan, &running, &id);
        header.programs = running.programs().iter().map(|p| p.state()).collect();
        let spec = RunSpec {
            id: id.clone(),
            name,
            image,
            digest,
            detached,
            owner: caller.uid,
            params,
            header,
            timeout: opts.timeout,
            metrics: opts.metrics,
            ledger: super::detached::ledger(&self.agent, &id, detached)?,
        };
        let (timeout, object) = (opts.timeout, opts.object.clone());
        // A detached run's log is its first attacher: it misses no event.
        let (first, log) = match first {
            None if detached => super::detached::pipe().map(|(a, p)| (Some(a), Some(p)))?,
            first => (first, None),
        };
        let on_end = super::record::on_end(self.agent.clone());
        let handle = run::spawn(spec, running, self.agent.conns.clone(), first, on_end);
        if detached {
            handle.set_stop_record(super::record::stop_record(&self.agent));
        }
        if let Some(pipe) = log {
            super::detached::start_writer(&self.agent, &handle, pipe);
        }
        if let Err(e) = super::record::started(&self.agent, &handle, timeout, object, scope) {
            handle.stop(stream::reason::ERROR);
            return Err(e);
        }
        self.agent.runs.lock().unwrap().insert(id, handle.clone());
        self.agent
            .conns
            .publish_run(&handle, &self.agent.auth)
            .await;
        Ok(handle)
    }
}

#[interface(name = "org.gadgetd.Agent1.Manager")]
impl Manager {
    /// Runs a compiled gadget read from `object` (an fd the caller opened).
    async fn run_object(
        &self,
        object: zbus::zvariant::Fd<'_>,
        definition: String,
        params: HashMap<String, String>,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(OwnedObjectPath, OwnedFd)> {
        let caller = self.agent.auth.check(conn, &hdr, ACTION_RUN).await?;
        // An arbitrary object also needs its own action (deniable on its own).
        self.agent
            .auth
            .check(conn, &hdr, super::authz::ACTION_RUN_OBJECT)
            .await?;
        super::policy::admit(self.agent.images(), "", "", caller.uid).await?;
        let mut opts = parse_options(&options)?;
        let fd = object
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| fdo::Error::InvalidArgs(format!("bad object fd: {e}")))?;
        let image = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .map(|p| format!("file:{}", p.display()))
        .unwrap_or_else(|_| "file:(fd)".into());
        check_definition(&definition)?;
        let bytes = super::fdread::read_regular(
            fd,
            super::limits::MAX_OBJECT_BYTES,
            super::limits::OBJECT_READ_TIMEOUT,
            "the object",
        )
        .await?;
        let detach = opts.detach;
        let (gadget, source) = tokio::task::spawn_blocking(move || -> fdo::Result<_> {
            // A detached run keeps its object, to be loaded again after a restart.
            let source = detach.then(|| (bytes.clone(), definition.clone()));
            let def = (!definition.trim().is_empty()).then_some(definition.as_str());
            Ok((
                Gadget::from_object(bytes, def).map_err(gadget_error)?,
                source,
            ))
        })
        .await
        .map_err(|e| fdo::Error::Failed(e.to_string()))??;
        let (mut attacher, client_fd) =
            Attacher::pair().map_err(|e| fdo::Error::Failed(format!("socketpair: {e}")))?;
        attacher.output = opts.output.take();
        // A detached run's caller gets a stream that ends at once; events go to the log.
        let first = (!detach).then_some(attacher);
        if let Some((object, definition)) = source {
            opts.object = Some(super::record::source(&self.agent, object, definition)?);
        }
        let params: BTreeMap<_, _> = params.into_iter().collect();
        // Without a definition name, an object is named after its file.
        let name = gadget
            .definition_name()
            .map(str::to_string)
            .unwrap_or_else(|| {
                let stem = image.rsplit('/').next().unwrap_or("gadget");
                stem.trim_end_matches(".o").to_string()
            });
        let handle = self
            .start_run(
                gadget,
                name,
                image,
                String::new(),
                params,
                opts,
                caller,
                detach,
                first,
            )
            .await?;
        Ok((handle.path(), client_fd.into()))
    }

    /// Runs a local image (pulling is `org.gadgetd.Agent1.Images`' job).
    async fn run(
        &self,
        image: String,
        params: HashMap<String, String>,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(OwnedObjectPath, OwnedFd)> {
        let caller = self.agent.auth.check(conn, &hdr, ACTION_RUN).await?;
        let mut opts = parse_options(&options)?;
        let (gadget, reference, digest, ignored) =
            crate::service::images::load_gadget(self.agent.images(), image).await?;
        for layer in &ignored {
            tracing::warn!(image = %reference, %layer, "image layer not used");
        }
        opts.notes = ignored
            .iter()
            .map(|l| format!("the image's {l} is not used (gadgetd runs its eBPF program layer)"))
            .collect();
        super::policy::admit(self.agent.images(), &reference, &digest, caller.uid).await?;
        let (mut attacher, client_fd) =
            Attacher::pair().map_err(|e| fdo::Error::Failed(format!("socketpair: {e}")))?;
        attacher.output = opts.output.take();
        let detach = opts.detach;
        let first = (!detach).then_some(attacher);
        if detach {
            // Restored from its own copy, even if the image is removed later.
            opts.object = Some(super::detached::store_image(&self.agent, &digest).await?);
        }
        let name = gadget.name();
        let params: BTreeMap<_, _> = params.into_iter().collect();
        let handle = self
            .start_run(
                gadget, name, reference, digest, params, opts, caller, detach, first,
            )
            .await?;
        Ok((handle.path(), client_fd.into()))
    }

    /// Another event stream of a live run.
    async fn attach(
        &self,
        id: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<OwnedFd> {
        self.attach_with_options(id, HashMap::new(), hdr, conn)
            .await
    }

    /// `Attach` with options: `output-fd` (h), the caller's own output
    /// for its event lines.
    async fn attach_with_options(
        &self,
        id: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<OwnedFd> {
        let (handle, _) = self
            .run_for(&id, conn, &hdr, ACTION_RUN, Access::Read)
            .await?;
        let mut output = None;
        for (key, value) in &options {
            match key.as_str() {
                options::OUTPUT_FD => output = Some(super::options_ext::output(key, value)?),
                other => {
                    return Err(fdo::Error::InvalidArgs(format!(
                        "unknown option `{other}` (AttachWithOptions takes {})",
                        options::OUTPUT_FD
                    )));
                }
            }
        }
        let (mut attacher, client_fd) =
            Attacher::pair().map_err(|e| fdo::Error::Failed(format!("socketpair: {e}")))?;
        attacher.output = output;
        handle.attach(attacher).map_err(|_| {
            fdo::Error::Failed(format!(
                "run {} has ended ({})",
                handle.id,
                handle.exit_reason()
            ))
        })?;
        Ok(client_fd.into())
    }

    /// Stops a run.
    async fn stop(
        &self,
        id: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        let (handle, _) = self
            .run_for(&id, conn, &hdr, ACTION_RUN, Access::Control)
            .await?;
        if !handle.is_live() {
            return Err(fdo::Error::Failed(format!(
                "run {} is not running ({})",
                handle.id,
                handle.state()
            )));
        }
        handle.stop_requested().map_err(fdo::Error::Failed)
    }

    /// Live runs (and ended detached ones).
    async fn list_runs(
        &self,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<RunSummary>> {
        self.agent.auth.check(conn, &hdr, ACTION_READ).await?;
        Ok(self
            .agent
            .runs
            .lock()
            .unwrap()
            .values()
            .map(|r| r.summary())
            .collect())
    }

    /// The logged events of a detached run (same stream format as Attach).
    /// Options: `follow` (b), `since-us` (t, microseconds since the epoch).
    async fn logs(
        &self,
        id: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<OwnedFd> {
        let (handle, caller) = self
            .run_for(&id, conn, &hdr, ACTION_READ, Access::Read)
            .await?;
        let permit = self
            .agent
            .limits
            .log_streams
            .acquire(caller.uid)
            .map_err(fdo::Error::LimitsExceeded)?;
        super::detached::logs(&self.agent, handle, &options, permit).map(Into::into)
    }

    /// Forgets an ended run (its row in the state database and its memory log).
    async fn remove(
        &self,
        id: String,
        #[zbus(header)] hdr: MsgHeader<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        let (handle, _) = self
            .run_for(&id, conn, &hdr, ACTION_RUN, Access::Control)
            .await?;
        super::detached::remove(&self.agent, handle).await
    }

    #[zbus(property)]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}
