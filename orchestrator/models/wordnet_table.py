"""Derive the ImageNet concept table (``orchestrator/data/imagenet_concepts.json``) from WordNet.

ImageNet-1k classes are WordNet 3.0 noun synsets (``n02106662`` is offset 02106662 in
``data.noun``), so each class has hypernym paths up to ``entity``. This script reads the
database files of Debian's ``wordnet-base`` package (``/usr/share/wordnet``) with a small parser
of the documented ``data.noun`` format (wndb(5WN)), keeps the ancestors a person would search
for, and writes a compact JSON table. The table is committed, so neither ``make setup`` nor the
orchestrator needs WordNet; rerun this only to change the pruning rule::

    apt-get install wordnet-base
    python -m orchestrator.models.wordnet_table [--wordnet /usr/share/wordnet] [--out FILE]

Pruning rule: every ancestor is a concept except the synsets in :data:`STOPLIST`, which are of
two kinds: the abstract top of the hierarchy (``entity``, ``object``, ``artifact``, ``organism``,
``instrumentality``...), true of hundreds of unrelated classes and never what anyone searches
for; and taxonomic or technical jargon (``chordate``, ``placental``, ``diapsid``, ``oscine``...)
that would crowd the useful words (``dog``, ``bird``, ``reptile``) out of a short list. Removing a
synset from a path keeps the synsets above it, so ``fruit`` and ``food`` stay reachable.
:data:`IGNORED_LINKS` lists the few hypernym links that are not followed at all.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_WORDNET = Path("/usr/share/wordnet")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "imagenet_concepts.json"
HYPERNYM_POINTERS = {"@", "@i"}  # hypernym, instance hypernym

#: Offsets never used as concepts, with the first lemma each must have (checked on load, so a
#: typo cannot silently drop the wrong synset).
STOPLIST: dict[str, str] = {
    # The abstract top: true of most classes, searched for by nobody.
    "00001740": "entity",
    "00001930": "physical entity",
    "00002684": "object",
    "00003553": "whole",
    "00002137": "abstraction",
    "00020827": "matter",
    "00019613": "substance",
    "00020090": "substance",
    "15046900": "solid",
    "03892891": "part",
    "13809207": "part",
    "03932203": "piece",
    "00031921": "relation",
    "00007347": "causal agent",
    "14778436": "agent",
    "00033020": "communication",
    "00021939": "artifact",
    "03575240": "instrumentality",
    "00004475": "organism",
    "00004258": "living thing",
    "00019128": "natural object",
    "03076708": "commodity",
    "03093574": "consumer goods",
    "03257877": "durables",
    "04341686": "structure",
    "03122748": "covering",
    "04014297": "protective covering",
    "00022903": "article",
    "04550840": "ware",
    "04377057": "system",
    "03297735": "establishment",
    "03839993": "obstruction",
    "03738472": "mechanism",
    "09349797": "mechanism",
    "07570720": "nutriment",
    "07566340": "foodstuff",
    "13086908": "plant part",
    "13087625": "plant organ",
    "11675842": "reproductive structure",
    "03953020": "place of business",
    "03748162": "mercantile establishment",
    "04361095": "supporting structure",
    "03050026": "cloth covering",
    "07566863": "starches",
    "04580298": "white goods",
    "04580493": "white goods",
    "03248958": "drug of abuse",
    "04470953": "transducer",
    "03274561": "electro-acoustic transducer",
    "09287968": "geological formation",
    "09366317": "natural elevation",
    "04081844": "restraint",
    "03100490": "conveyance",
    "03405265": "furnishing",
    "03125870": "craft",
    # Taxonomic and technical jargon between the words people use.
    "01466257": "chordate",
    "01886756": "placental",
    "01661818": "diapsid",
    "01661592": "anapsid",
    "01674216": "saurian",
    "01525720": "oscine",
    "01524359": "passerine",
    "01473806": "aquatic vertebrate",
    "02528163": "teleost fish",
    "02514825": "bony fish",
    "01428580": "soft-finned fish",
    "02552171": "spiny-finned fish",
    "01482071": "elasmobranch",
    "01480516": "cartilaginous fish",
    "02399000": "ruminant",
    "02401031": "bovid",
    "02394477": "even-toed ungulate",
    "02373336": "odd-toed ungulate",
    "02441326": "musteline mammal",
    "01727646": "colubrid snake",
    "01802721": "phasianid",
    "01873982": "metatherian",
    "01871543": "prototherian",
    "01871875": "monotreme",
    "02323449": "lagomorph",
    "02323902": "leporid",
    "02134971": "viverrine",
    "02507649": "procyonid",
    "02503127": "proboscidean",
    "02453611": "edentate",
    "01845477": "anseriform bird",
    "01825930": "coraciiform bird",
    "01838038": "piciform bird",
    "01789386": "gallinaceous bird",
    "01578575": "corvine bird",
    "01696633": "crocodilian reptile",
    "01909422": "coelenterate",
    "02316707": "echinoderm",
    "01914163": "anthozoan",
    "02206270": "hymenopterous insect",
    "02226183": "orthopterous insect",
    "02232951": "dictyopterous insect",
    "02246011": "homopterous insect",
    "02274024": "lepidopterous insect",
    "02171453": "lamellicorn beetle",
    "02171869": "scarabaeid beetle",
    "02268148": "odonate",
    "01976146": "decapod crustacean",
    "01439121": "cyprinid",
    "01438208": "cypriniform fish",
    "02554730": "percoid fish",
    "02638596": "ganoid",
    "02512938": "food fish",
    "01632047": "ambystomid",
    "01676755": "iguanid",
    "01687665": "agamid",
    "01745125": "elapid",
    "01662622": "chelonian",
    "02470899": "anthropoid ape",
    "02062430": "cetacean",
    "11552386": "spermatophyte",
    "11665372": "angiosperm",
    "13083586": "vascular plant",
    "03510583": "heavier-than-air craft",
    "03666917": "lighter-than-air craft",
    "02817799": "beating-reed instrument",
    "03393324": "free-reed instrument",
    "03228016": "double-reed instrument",
    "07710007": "solanaceous vegetable",
    "07713395": "cruciferous vegetable",
}

#: Hypernym links not followed: WordNet files a wheeled vehicle under "container" too, which
#: would tag every car and bicycle photo as a container.
IGNORED_LINKS: frozenset[tuple[str, str]] = frozenset({("04576211", "03094503")})


@dataclass(frozen=True)
class Synset:
    offset: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]


def parse_data_line(line: str) -> Synset:
    """One ``data.noun`` line: ``offset lex_file ss_type w_cnt (word lex_id)... p_cnt ptr...``."""
    fields = line.split(" | ", 1)[0].split()
    word_count = int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * i].replace("_", " ") for i in range(word_count))
    at = 4 + 2 * word_count
    pointer_count = int(fields[at])
    pointers = fields[at + 1 : at + 1 + 4 * pointer_count]
    hypernyms = tuple(
        pointers[4 * i + 1]
        for i in range(pointer_count)
        if pointers[4 * i] in HYPERNYM_POINTERS and pointers[4 * i + 2] == "n"
    )
    return Synset(fields[0], lemmas, hypernyms)


def read_wordnet(folder: Path) -> tuple[dict[str, Synset], str]:
    """Every noun synset by offset, and the license text the database carries."""
    synsets: dict[str, Synset] = {}
    license_lines: list[str] = []
    with (folder / "data.noun").open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("  "):  # the numbered license header
                license_lines.append(re.sub(r"^\s*\d+ ?", "", line.rstrip()))
            else:
                synset = parse_data_line(line)
                synsets[synset.offset] = synset
    return synsets, "\n".join(license_lines).strip()


def hypernym_paths(offset: str, synsets: dict[str, Synset]) -> list[tuple[str, ...]]:
    """Every path from ``offset``'s parents up to a root, most specific first."""
    parents = [p for p in synsets[offset].hypernyms if (offset, p) not in IGNORED_LINKS]
    if not parents:
        return [()]
    return [(p, *rest) for p in parents for rest in hypernym_paths(p, synsets)]


def depths(synsets: dict[str, Synset], offsets: Iterable[str]) -> dict[str, int]:
    """Shortest distance of each synset from a root (``entity`` is 0)."""
    found: dict[str, int] = {}

    def depth(offset: str) -> int:
        if offset not in found:
            parents = synsets[offset].hypernyms
            found[offset] = 1 + min(depth(p) for p in parents) if parents else 0
        return found[offset]

    return {o: depth(o) for o in offsets}


def build_table(
    wnids: Sequence[str], synsets: dict[str, Synset], license_text: str
) -> dict[str, Any]:
    """The JSON-ready table: concepts (pruned ancestors) and each class's pruned paths."""
    for offset, lemma in STOPLIST.items():
        if offset not in synsets or synsets[offset].lemmas[0] != lemma:
            raise ValueError(f"stoplist entry {offset} is not '{lemma}' in this WordNet")
    for child, parent in IGNORED_LINKS:
        if parent not in synsets.get(child, Synset(child, (), ())).hypernyms:
            raise ValueError(f"{child} has no hypernym {parent} in this WordNet")
    class_paths: list[list[tuple[str, ...]]] = []
    for wnid in wnids:
        offset = wnid.removeprefix("n")
        if offset not in synsets:
            raise ValueError(f"class {wnid} is not a noun synset of this WordNet")
        pruned: list[tuple[str, ...]] = []
        for path in hypernym_paths(offset, synsets):
            kept = tuple(o for o in path if o not in STOPLIST)
            if kept and kept not in pruned:
                pruned.append(kept)
        class_paths.append(pruned)
    vocabulary = sorted({o for paths in class_paths for path in paths for o in path})
    index = {o: i for i, o in enumerate(vocabulary)}
    depth = depths(synsets, vocabulary)
    return {
        "source": "WordNet 3.0 noun hypernyms of the ImageNet-1k classes, "
        "generated by `python -m orchestrator.models.wordnet_table`",
        "license": license_text,
        "concepts": [
            {"wnid": f"n{o}", "lemmas": list(synsets[o].lemmas), "depth": depth[o]}
            for o in vocabulary
        ],
        "classes": [
            {
                "wnid": wnid,
                "lemmas": list(synsets[wnid.removeprefix("n")].lemmas),
                "paths": [[index[o] for o in path] for path in paths],
            }
            for wnid, paths in zip(wnids, class_paths, strict=True)
        ],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=DEFAULT_WORDNET)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from orchestrator.models.export import label_lines

    wnids = [line.split(" ", 1)[0] for line in label_lines()]
    synsets, license_text = read_wordnet(args.wordnet)
    table = build_table(wnids, synsets, license_text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One class or concept per line: small, and readable in a diff.
    concepts = ",\n".join(json.dumps(c, ensure_ascii=False) for c in table["concepts"])
    classes = ",\n".join(json.dumps(c, ensure_ascii=False) for c in table["classes"])
    head = {k: v for k, v in table.items() if k not in ("concepts", "classes")}
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    args.out.write_text(
        f'{text},\n "concepts": [\n{concepts}\n],\n "classes": [\n{classes}\n]\n}}\n',
        encoding="utf-8",
    )
    print(f"wrote {args.out}: {len(table['concepts'])} concepts for {len(wnids)} classes")


if __name__ == "__main__":
    main()
