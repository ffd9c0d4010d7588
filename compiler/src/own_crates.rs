//! Where generated crates (and a new project's agent crate) find orchestr8's
//! own crates, `orchestr8-runtime` and `orchestr8-macros`: always by the exact
//! version of this `orchestr8`, so that a manifest it writes works against a
//! published release unchanged, and by path too when there is a checkout to
//! build them from (`--orchestr8-path`, or the one this binary was built
//! from, while it is still there).

use std::path::{Path, PathBuf};

/// This orchestr8's version, which its runtime and macros share.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The checkout this binary was built from (its `compiler/`'s parent); gone
/// when it was installed from the registry and the sources were cleaned.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// One of orchestr8's crates a generated manifest depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnCrate {
    /// `orchestr8-runtime`, which generated crates and agent crates use.
    Runtime,
    /// `orchestr8-macros`, the `#[agent]` attribute agent crates use.
    Macros,
}

impl OwnCrate {
    /// Its package name.
    pub fn name(self) -> &'static str {
        match self {
            OwnCrate::Runtime => "orchestr8-runtime",
            OwnCrate::Macros => "orchestr8-macros",
        }
    }

    /// Its directory in a checkout.
    fn dir(self) -> &'static str {
        match self {
            OwnCrate::Runtime => "runtime",
            OwnCrate::Macros => "macros",
        }
    }
}

/// Where orchestr8's crates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCrates {
    /// A checkout's root (absolute), for path dependencies; `None`: the
    /// registry only.
    checkout: Option<PathBuf>,
}

impl OwnCrates {
    /// From the registry, by version only.
    pub fn registry() -> Self {
        OwnCrates { checkout: None }
    }

    /// From a checkout, whose root `dir` is absolute (not checked: for tests
    /// and benchmarks; the CLI uses [`OwnCrates::locate`]).
    pub fn checkout(dir: PathBuf) -> Self {
        OwnCrates { checkout: Some(dir) }
    }

    /// The checkout's root, if any.
    pub fn checkout_dir(&self) -> Option<&Path> {
        self.checkout.as_deref()
    }

    /// `given` (`--orchestr8-path`: a checkout's root, or its `runtime/` as
    /// the older `--runtime-path` took), else the checkout this binary was
    /// built from if it is still there, else the registry.
    pub fn locate(given: Option<&Path>) -> Result<Self, String> {
        if let Some(given) = given {
            return Self::at(given);
        }
        let Ok(dir) = std::fs::canonicalize(BUILT_FROM) else { return Ok(OwnCrates::registry()) };
        match checked(&dir) {
            Ok(root) => Ok(OwnCrates::checkout(root)),
            // Pulled to another version since this orchestr8 was installed.
            Err(e @ CheckoutError::OtherVersion { .. }) => Err(format!(
                "{}: reinstall orchestr8 from it (`cargo install --path {}/compiler`), or pass --orchestr8-path \
                 with a checkout of orchestr8 {VERSION}",
                e.describe(&dir),
                dir.display()
            )),
            Err(_) => Ok(OwnCrates::registry()),
        }
    }

    /// A note for the user when the crates come from the registry (nothing
    /// says so in the manifest's path).
    pub fn registry_note(&self) -> Option<String> {
        self.checkout.is_none().then(|| {
            format!(
                "note: orchestr8-runtime and orchestr8-macros {VERSION} come from the registry, as no orchestr8 \
                 checkout is in use; pass --orchestr8-path DIR (a checkout's root) to build against one"
            )
        })
    }

    /// Where a workflow's crate finds the runtime: where its agent crates
    /// (`agent_manifests`, their `Cargo.toml`s) find it, since one build
    /// cannot hold two `orchestr8-runtime`s of the same version from two
    /// places; `given` must agree with them. Without agent crates that say,
    /// as [`OwnCrates::locate`].
    pub fn locate_for(given: Option<&Path>, agent_manifests: &[PathBuf]) -> Result<Self, String> {
        let mut agents: Option<(OwnCrates, &Path)> = None;
        for manifest in agent_manifests {
            let Some(theirs) = runtime_of(manifest)? else { continue };
            match &agents {
                Some((first, first_manifest)) if *first != theirs => {
                    return Err(format!(
                        "`{}` and `{}` take orchestr8-runtime from different places ({} and {}): one build \
                         holds one runtime; make the agent crates depend on the same one",
                        first_manifest.display(),
                        manifest.display(),
                        first.describe(),
                        theirs.describe()
                    ))
                }
                Some(_) => {}
                None => agents = Some((theirs, manifest)),
            }
        }
        let Some((theirs, manifest)) = agents else { return Self::locate(given) };
        match given {
            None => Ok(theirs),
            Some(given) => {
                let asked = Self::at(given)?;
                if asked != theirs {
                    return Err(format!(
                        "--orchestr8-path gives {}, but the agent crate `{}` takes orchestr8-runtime from {}: one \
                         build holds one runtime; leave --orchestr8-path out (the agents' is used) or point \
                         their dependency at the same checkout",
                        asked.describe(),
                        manifest.display(),
                        theirs.describe()
                    ));
                }
                Ok(asked)
            }
        }
    }

    /// `--orchestr8-path`'s checkout (its root, or its `runtime/`).
    fn at(given: &Path) -> Result<Self, String> {
        checked(given).map(OwnCrates::checkout).map_err(|e| {
            let advice = match &e {
                CheckoutError::OtherVersion { root, .. } => format!(
                    "build orchestr8 from that checkout (`cargo install --path {}/compiler`) or pass another \
                     --orchestr8-path",
                    root.display()
                ),
                _ => "pass --orchestr8-path with the root of an orchestr8 checkout".to_owned(),
            };
            format!("{}; {advice}", e.describe(given))
        })
    }

    /// Where, in words.
    fn describe(&self) -> String {
        match &self.checkout {
            Some(root) => format!("the checkout at `{}`", root.display()),
            None => format!("the registry (version {VERSION})"),
        }
    }

    /// The TOML value of a dependency on `krate` with `features`, for a
    /// manifest in `manifest_dir` (a relative path), or with an absolute path
    /// when `manifest_dir` is `None` (a project that may move).
    pub fn dependency(&self, krate: OwnCrate, manifest_dir: Option<&Path>, features: &[&str]) -> String {
        let mut fields = vec![format!("version = \"={VERSION}\"")];
        if let Some(root) = &self.checkout {
            let dir = root.join(krate.dir());
            let path = match manifest_dir {
                Some(from) => crate::codegen::relative_path(from, &dir),
                None => dir,
            };
            fields.push(format!("path = {}", toml_string(&path.to_string_lossy().replace('\\', "/"))));
        }
        if !features.is_empty() {
            let list: Vec<String> = features.iter().map(|f| toml_string(f)).collect();
            fields.push(format!("features = [{}]", list.join(", ")));
        }
        format!("{{ {} }}", fields.join(", "))
    }
}

/// Why a directory is not a checkout to build against.
enum CheckoutError {
    /// It is not there.
    Missing(std::io::Error),
    /// It lacks the crates.
    NotACheckout,
    /// A checkout of another version.
    OtherVersion { root: PathBuf, version: String },
    /// A checkout whose version cannot be read.
    NoVersion { root: PathBuf },
}

impl CheckoutError {
    /// What is wrong with `given`, in words.
    fn describe(&self, given: &Path) -> String {
        match self {
            CheckoutError::Missing(e) => format!("cannot find `{}`: {e}", given.display()),
            CheckoutError::NotACheckout => format!(
                "`{}` is not an orchestr8 checkout (it has no `runtime/Cargo.toml` and `macros/Cargo.toml`)",
                given.display()
            ),
            CheckoutError::OtherVersion { root, version } => format!(
                "the checkout at `{}` is orchestr8 {version}, and this orchestr8 is {VERSION} (generated code needs \
                 the runtime it was generated for)",
                root.display()
            ),
            CheckoutError::NoVersion { root } => format!(
                "cannot read the version of the checkout at `{}` (its `Cargo.toml` has no `[workspace.package] \
                 version`)",
                root.display()
            ),
        }
    }
}

/// The root of the checkout at `given` (its root, or its `runtime/`), if it
/// is one of this version.
fn checked(given: &Path) -> Result<PathBuf, CheckoutError> {
    let dir = std::fs::canonicalize(given).map_err(CheckoutError::Missing)?;
    let root = if is_checkout(&dir) {
        dir
    } else if dir.file_name().is_some_and(|n| n == "runtime") && dir.parent().is_some_and(is_checkout) {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        return Err(CheckoutError::NotACheckout);
    };
    match checkout_version(&root) {
        Some(version) if version == VERSION => Ok(root),
        Some(version) => Err(CheckoutError::OtherVersion { root, version }),
        None => Err(CheckoutError::NoVersion { root }),
    }
}

/// Where the crate of `manifest` takes `orchestr8-runtime` from: a
/// checkout (a path dependency; checked as `--orchestr8-path` is), the
/// registry (a version only), or `None` when it does not depend on it.
fn runtime_of(manifest: &Path) -> Result<Option<OwnCrates>, String> {
    let text = std::fs::read_to_string(manifest).map_err(|e| format!("cannot read `{}`: {e}", manifest.display()))?;
    let parsed: toml::Table =
        toml::from_str(&text).map_err(|e| format!("`{}` is not valid TOML: {e}", manifest.display()))?;
    let Some(dependency) = parsed.get("dependencies").and_then(|d| d.get(OwnCrate::Runtime.name())) else {
        return Ok(None);
    };
    match dependency.get("path").and_then(toml::Value::as_str) {
        Some(path) => {
            let dir = manifest.parent().unwrap_or(Path::new(".")).join(path);
            checked(&dir).map(|root| Some(OwnCrates::checkout(root))).map_err(|e| {
                format!(
                    "`{}` depends on orchestr8-runtime at `{path}`: {}; point its orchestr8-runtime and \
                     orchestr8-macros dependencies at a checkout of orchestr8 {VERSION}",
                    manifest.display(),
                    e.describe(&dir)
                )
            })
        }
        None => Ok(Some(OwnCrates::registry())),
    }
}

/// Whether `dir` holds both crates.
fn is_checkout(dir: &Path) -> bool {
    [OwnCrate::Runtime, OwnCrate::Macros].iter().all(|c| dir.join(c.dir()).join("Cargo.toml").is_file())
}

/// The checkout's `[workspace.package] version`.
fn checkout_version(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let manifest: toml::Table = toml::from_str(&text).ok()?;
    let version = manifest.get("workspace")?.get("package")?.get("version")?.as_str()?;
    Some(version.to_owned())
}

/// A TOML basic string.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_dependencies_carry_the_exact_version_only() {
        let own = OwnCrates::registry();
        assert_eq!(
            own.dependency(OwnCrate::Runtime, Some(Path::new("/p")), &["llm"]),
            format!("{{ version = \"={VERSION}\", features = [\"llm\"] }}")
        );
        assert_eq!(own.dependency(OwnCrate::Macros, None, &[]), format!("{{ version = \"={VERSION}\" }}"));
    }

    #[test]
    fn checkout_dependencies_add_a_path() {
        let own = OwnCrates::checkout(PathBuf::from("/src/o8"));
        assert_eq!(
            own.dependency(OwnCrate::Runtime, Some(Path::new("/src/o8/examples/x")), &[]),
            format!("{{ version = \"={VERSION}\", path = \"../../runtime\" }}")
        );
        assert_eq!(
            own.dependency(OwnCrate::Macros, None, &[]),
            format!("{{ version = \"={VERSION}\", path = \"/src/o8/macros\" }}")
        );
    }

    #[test]
    fn the_build_checkout_is_found_and_versioned() {
        let own = OwnCrates::locate(None).unwrap();
        let root = own.checkout_dir().expect("tests run in a checkout");
        assert_eq!(checkout_version(root).as_deref(), Some(VERSION));
        // Its runtime directory is accepted too, as --runtime-path took it.
        assert_eq!(OwnCrates::locate(Some(&root.join("runtime"))).unwrap(), own);
        let err = OwnCrates::locate(Some(&root.join("compiler"))).unwrap_err();
        assert!(err.contains("is not an orchestr8 checkout"), "{err}");
    }
}
