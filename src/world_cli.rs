//! `isoplane world …`: validate, format and import world files from the command line.
//!
//! Messages follow the compiler convention `FILE:LINE:COLUMN: error: PATH: what is wrong`
//! so editors can jump to them; the exit code is non-zero whenever anything is wrong.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use isoplane_world_format::tiled::{ImportError, ImportOptions, Imported, import_tiled, import_tiled_tmx};
use isoplane_world_format::{DEMO_WORLD, Problem, World, limits, locate};

#[derive(Debug, Subcommand)]
pub enum WorldCommand {
    /// Check a world file and report every error at once.
    Validate {
        file: PathBuf,
        /// Also check that every asset the world references is in this folder, named
        /// `<content id>.<extension>`, with matching contents.
        #[arg(long)]
        assets: Option<PathBuf>,
    },
    /// Rewrite a valid world file in Isoplane's canonical layout.
    Fmt {
        file: PathBuf,
        /// Only check: exit with an error if the file is not in the canonical layout.
        #[arg(long)]
        check: bool,
    },
    /// Convert a Tiled map (.tmx, or JSON: .tmj) into an Isoplane world file.
    ImportTiled {
        map: PathBuf,
        /// Where to write the world file.
        #[arg(short, long)]
        output: PathBuf,
        /// Folder to copy the map's images into, named by content ID.
        #[arg(long)]
        assets: Option<PathBuf>,
        /// The world's name (default: from the map).
        #[arg(long)]
        name: Option<String>,
    },
    /// Re-import a Tiled map on every save, and publish each good import to an
    /// asset server (docs/maps.md).
    Watch(crate::world_watch::WatchArgs),
}

pub fn run(command: WorldCommand) -> Result<ExitCode> {
    match command {
        WorldCommand::Validate { file, assets } => validate(&file, assets.as_deref()),
        WorldCommand::Fmt { file, check } => format(&file, check),
        WorldCommand::ImportTiled { map, output, assets, name } => import(&map, &output, assets.as_deref(), name),
        WorldCommand::Watch(args) => crate::world_watch::run(args),
    }
}

/// `isoplane demo`: what the built-in demo world holds.
pub fn describe_demo() -> Result<ExitCode> {
    let world = World::from_json(DEMO_WORLD).context("the built-in demo world does not validate")?;
    println!("Built-in demo world: {}", summary(&world));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn summary(world: &World) -> String {
    let file = world.file();
    format!(
        "\"{}\", {}×{} {} tiles, {} zones, {} exclusive objects, {} spawn points, {} exits",
        file.name,
        file.grid.width,
        file.grid.height,
        file.grid.orientation.as_str(),
        file.zones.len() + 1,
        file.objects.len(),
        file.spawns.len(),
        file.exits.len()
    )
}

/// Reads a file people pass on the command line, refusing absurd sizes before reading.
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let metadata = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !metadata.is_file() {
        bail!("{} is not a file", path.display());
    }
    if metadata.len() > limits::MAX_FILE_BYTES as u64 {
        bail!(
            "{} has {} bytes; Isoplane reads files of at most {} bytes",
            path.display(),
            metadata.len(),
            limits::MAX_FILE_BYTES
        );
    }
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub(crate) fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_limited(path)?).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Prints problems as `FILE:LINE:COLUMN: LEVEL: PATH: message`.
fn print_problems(file: &Path, text: &str, level: &str, problems: &[Problem]) {
    for problem in problems {
        match locate(text, &problem.path).filter(|_| problem.path != "$") {
            Some((line, column)) => eprintln!("{}:{line}:{column}: {level}: {problem}", file.display()),
            None => eprintln!("{}: {level}: {problem}", file.display()),
        }
    }
}

fn load(file: &Path) -> Result<Result<(World, String), ExitCode>> {
    let text = read_text(file)?;
    match World::from_json(&text) {
        Ok(world) => Ok(Ok((world, text))),
        Err(errors) => {
            print_problems(file, &text, "error", &errors.errors);
            let count = errors.errors.len();
            eprintln!(
                "{}: {count} error{}; the world was not loaded",
                file.display(),
                if count == 1 { "" } else { "s" }
            );
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

fn validate(file: &Path, assets: Option<&Path>) -> Result<ExitCode> {
    let (world, text) = match load(file)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    print_problems(file, &text, "warning", world.warnings());
    if let Some(folder) = assets {
        let missing = check_assets(&world, folder)?;
        if missing > 0 {
            eprintln!("{}: {missing} referenced asset(s) missing or corrupt in {}", file.display(), folder.display());
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("{}: valid world {}", file.display(), summary(&world));
    Ok(ExitCode::SUCCESS)
}

/// Checks that each asset the world names is in `folder` with the right bytes; returns
/// how many are missing or corrupt, after printing each.
fn check_assets(world: &World, folder: &Path) -> Result<usize> {
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    let mut bad = 0;
    for tileset in &world.file().tilesets {
        let id = tileset.image.to_string();
        let found = names.iter().find(|name| name.split('.').next() == Some(id.as_str()));
        match found {
            None => {
                eprintln!("missing asset {id} (tileset \"{}\") in {}", tileset.name, folder.display());
                bad += 1;
            }
            Some(name) => {
                let bytes = read_limited(&folder.join(name))?;
                if !tileset.image.matches(&bytes) {
                    eprintln!("{name}: its contents do not hash to {id}: the file is corrupt or misnamed");
                    bad += 1;
                }
            }
        }
    }
    Ok(bad)
}

fn format(file: &Path, check: bool) -> Result<ExitCode> {
    let (world, text) = match load(file)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let canonical = world.to_json_pretty();
    if canonical == text {
        return Ok(ExitCode::SUCCESS);
    }
    if check {
        eprintln!("{}: not in the canonical layout; run `isoplane world fmt {}`", file.display(), file.display());
        return Ok(ExitCode::FAILURE);
    }
    fs::write(file, canonical).with_context(|| format!("cannot write {}", file.display()))?;
    println!("{}: rewritten", file.display());
    Ok(ExitCode::SUCCESS)
}

/// How a Tiled map is saved, told by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// `.tmj` or `.json`.
    Json,
    /// `.tmx`.
    Xml,
}

/// The kind of Tiled map the file is, refusing any other file by its name.
pub(crate) fn check_map_kind(map: &Path) -> Result<MapKind> {
    let extension = map.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "tmj" | "json" => Ok(MapKind::Json),
        "tmx" => Ok(MapKind::Xml),
        _ => bail!("{}: expected a Tiled map (.tmx, .tmj or .json)", map.display()),
    }
}

/// Imports a Tiled map file, reading the files it references next to it. The outer error
/// is a file that cannot be read; the inner one, a map that cannot be imported.
pub(crate) fn import_map(map: &Path, name: Option<String>) -> Result<Result<Imported, ImportError>> {
    let kind = check_map_kind(map)?;
    let text = read_text(map)?;
    let base = map.parent().map(Path::to_path_buf).unwrap_or_default();
    // Tiled projects reference files relative to the map, often in sibling folders.
    let read_file = |relative: &str| read_limited(&base.join(relative)).ok();
    let options = ImportOptions { name };
    Ok(match kind {
        MapKind::Json => import_tiled(&text, &options, &read_file),
        MapKind::Xml => import_tiled_tmx(&text, &options, &read_file),
    })
}

fn import(map: &Path, output: &Path, assets: Option<&Path>, name: Option<String>) -> Result<ExitCode> {
    let imported = match import_map(map, name)? {
        Ok(imported) => imported,
        Err(error) => {
            eprintln!("{}: error: {error}", map.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    for note in &imported.report.notes {
        eprintln!("{}: note: {note}", map.display());
    }
    fs::write(output, imported.world.to_json_pretty()).with_context(|| format!("cannot write {}", output.display()))?;
    if let Some(folder) = assets {
        fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
        for asset in &imported.assets {
            let extension = Path::new(&asset.source).extension().and_then(|e| e.to_str()).unwrap_or("bin");
            let target = folder.join(format!("{}.{extension}", asset.id));
            fs::write(&target, &asset.bytes).with_context(|| format!("cannot write {}", target.display()))?;
        }
    } else if !imported.assets.is_empty() {
        eprintln!(
            "{}: note: {} image(s) are referenced by content ID; pass --assets DIR to copy them out for upload",
            map.display(),
            imported.assets.len()
        );
    }
    println!(
        "{}: wrote {}: {}, {} image asset(s)",
        map.display(),
        output.display(),
        summary(&imported.world),
        imported.assets.len()
    );
    Ok(ExitCode::SUCCESS)
}
