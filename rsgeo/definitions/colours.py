"""Colours of land-cover classes: conventional ones for recognisable names, shared with the plugin.

A class called "water", "forest", "urban area" or "cropland" — in any language
rsgeo's class sets know (en, pt, es, fr, de, nl, it, zh, ko, ru) — gets the colour
map readers expect: the legend of ESA WorldCover 10 m (Zanaga et al., 2022, product
user manual v2.0, table 1), plus grey for roads and white for clouds, which WorldCover
has no class for. Other names get a qualitative palette in order. Stored styles
(:mod:`rsgeo.styles`) and the QGIS search panel both colour with :func:`class_colours`,
so a land-cover answer looks the same in both, at the same :data:`LAYER_OPACITY`.

Standard library only: the plugin reads this file through its link to ``definitions/``.
"""

from __future__ import annotations

import colorsys
import re
import unicodedata
from collections.abc import Mapping, Sequence

#: Opacity of rsgeo's answer layers over the imagery (stored styles and the search panel).
LAYER_OPACITY = 0.75

#: ESA WorldCover legend colours ("r,g,b").
WORLDCOVER = {
    "tree cover": "0,100,0",
    "shrubland": "255,187,34",
    "grassland": "255,255,76",
    "cropland": "240,150,255",
    "built-up": "250,0,0",
    "bare / sparse vegetation": "180,180,180",
    "snow and ice": "240,240,240",
    "permanent water bodies": "0,100,200",
    "herbaceous wetland": "0,150,160",
    "mangroves": "0,207,117",
    "moss and lichen": "250,230,160",
}

# Terms per concept, in every language of the class sets. A plain term matches a whole word
# (or its plural in s/es); "term*" matches words starting with it; "*term*" matches inside a
# word (German and Dutch compounds); a term in Chinese characters matches anywhere. Accents
# are ignored on both sides. The first concept with a matching term wins, so the order
# settles names that hold two ("herbaceous wetland", "bare ground or sparse vegetation").
_CONCEPTS: tuple[tuple[str, str, str], ...] = (
    ("wetland", WORLDCOVER["herbaceous wetland"],
     "wetland* marsh* swamp* bog fen humide* úmida umida pântano* brejo* humedal* pantano* marais marécage* "
     "*feucht* sumpf* moor moeras* palude paludi 湿地 沼泽 습지* 늪 болот*"),
    ("mangrove", WORLDCOVER["mangroves"], "mangrov* mangue* manglar* 红树 맹그로브* мангр*"),
    ("moss", WORLDCOVER["moss and lichen"],
     "moss* lichen* tundra* musgo* líquen* liquen* mousse* moos* flechte* mos mossen korstmos* muschi* "
     "licheni 苔藓 地衣 苔原 이끼* 지의류* 툰드라* мох мхи мхов лишайник* тундр*"),
    ("snow", WORLDCOVER["snow and ice"],
     "snow* ice glacier* neve gelo geleira* nieve hielo glaciar* neige glace glaciers schnee* eis gletscher* "
     "sneeuw ijs ghiacci* 冰 雪 눈 눈과 얼음* 빙하* снег* лед лёд льд* ледник*"),
    ("cropland", WORLDCOVER["cropland"],
     "crop* farm* agricultur* arable rice paddy paddies orchard* vineyard* plantation* cultiv* agrícol* agricol* "
     "lavoura* plantaç* cultura culturas cultures culture acker* *kultur* landwirtschaft* akker* gewas* "
     "teelt* landbouw* coltiv* coltur* 耕地 农田 作物 稻 果园 경작* 농경* 작물* 농지* 논 밭 "
     "пахот* пашн* посев* сельскохоз* насажден* культур*"),
    ("water", WORLDCOVER["permanent water bodies"],
     "water* river* lake* sea ocean* pond* reservoir* stream* canal* estuar* lagoon* harbour* harbor* "
     "água agua aguas rio rios río lago* mar oceano* embalse* eau eaux rivière* fleuve* lac lacs mer "
     "wasser* fluss* flüsse* see seen meer gewässer* rivier* zee plas meren acqua acque fiume* laghi mare "
     "idric* 水 河 湖 海 물 수역* 강 바다* 호수* 하천* вод* рек* река озер* озёр* мор* океан*"),
    ("bare", WORLDCOVER["bare / sparse vegetation"],
     "bare barren desert* sand* dune* rock* beach* expost* deserto* areia* praia* desnud* desiert* arena* "
     "playa* nu nue désert* plage* offen* wüste* kahl* strand* kale kaal woestijn* zand* nudo nuda "
     "spiaggi* 裸 沙漠 荒 沙滩 나지* 사막* 나대지* 모래* голая голый голые пустын* песок пески песч*"),
    ("road", "90,90,90",
     "road* highway* motorway* freeway* street* railway* rodovia* estrada* rua autopista* carretera* calle* "
     "autoroute* route* rue autobahn* straße* strasse* snelweg* weg wegen autostrad* strada strade "
     "公路 道路 铁路 도로* 고속도로* 철도* шоссе дорог*"),
    ("built", WORLDCOVER["built-up"],
     "built* building* urban* city cities town* residential* industrial* commercial* settlement* house home* "
     "village* constru* edifíc* edific* cidade* residencia* industria* casas urbaniz* ciudad* bâti* "
     "urbain* ville* résidentiel* residentiel* industriel* bebaut* *gebäude* stadt* städt* siedlung* "
     "bebouw* *gebouw* stedelijk* stad edifica* città residenzial* 建 城市 住宅 工业 城镇 "
     "시가화* 건물* 도시* 주거* 산업* застро* здани* город* жил* промышлен*"),
    ("shrub", WORLDCOVER["shrubland"],
     "shrub* bush* scrub* heath* chaparral arbust* matorral* broussaill* maquis strauch* gebüsch* busch* struik* "
     "macchia 灌木 관목* кустар*"),
    ("grass", WORLDCOVER["grassland"],
     "grass* meadow* pasture* prairie* savann* herbaceous rangeland* pradaria* pastage* herbác* herbac* "
     "relva* pastizal* prader* pasto* pâtur* patur* pelouse* gras* wiese* weide* kraut* weiland* "
     "kruidachtig* prateri* prato prati pascol* erbac* 草 牧场 초지* 초본* 목초* 초원* луг* пастбищ* трав*"),
    ("forest", WORLDCOVER["tree cover"],
     "forest* tree* wood* jungle* florest* árvore* arvore* arbór* arbor* mata bosque* árbol* arbol* "
     "selva* forêt* foret* bois wald* *baum* forst* gehölz* bos bossen boom* woud* bosc* alber* "
     "森林 树 林 숲* 수목* 산림* 삼림* лес* древес* дерев*"),
    ("cloud", "255,255,255", "cloud* nuve* nube* nuage* wolke* wolk* nuvol* 云 구름* облак*"),
)

# A qualitative palette (Tableau 10 + 10 lighter) for names with no conventional colour.
QUALITATIVE = (
    "31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189",
    "140,86,75", "227,119,194", "127,127,127", "188,189,34", "23,190,207",
    "174,199,232", "255,187,120", "152,223,138", "255,152,150", "197,176,213",
    "196,156,148", "247,182,210", "199,199,199", "219,219,141", "158,218,229",
)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def _plain(text: str) -> str:
    """Case-folded, without accents (ё → е, é → e); Hangul stays composed."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return unicodedata.normalize("NFC", stripped)


def _matches(term: str, words: Sequence[str], text: str) -> bool:
    if _HAN.search(term):
        return term in text
    if term.startswith("*") and term.endswith("*"):
        core = term.strip("*")
        return any(core in w for w in words)
    if term.endswith("*"):
        stem = term[:-1]
        return any(w.startswith(stem) for w in words)
    return any(w in (term, term + "s", term + "es") for w in words)


_TERMS = tuple((concept, rgb, tuple(_plain(t) for t in terms.split())) for concept, rgb, terms in _CONCEPTS)


def concept_of(name: str) -> str | None:
    """The land-cover concept a class name reads as (``water``, ``forest``, ``built`` …), or ``None``."""
    text = _plain(name)
    words = re.findall(r"\w+", text)
    for concept, _, terms in _TERMS:
        if any(_matches(t, words, text) for t in terms):
            return concept
    return None


def conventional_colour(name: str) -> str | None:
    """The conventional ``"r,g,b"`` of a recognisable class name, or ``None``."""
    concept = concept_of(name)
    return next(rgb for c, rgb, _ in _TERMS if c == concept) if concept is not None else None


def class_colours(names: Sequence[str], known: Mapping[str, str] | None = None) -> list[str]:
    """An ``"r,g,b"`` per class: ``known`` (a class set's legend) first, then the conventional
    colour of the name, then the qualitative palette in order, skipping colours already used."""
    known = known or {}
    out: list[str | None] = [known.get(n) or conventional_colour(n) for n in names]
    spare = [c for c in QUALITATIVE if c not in out]
    for i, colour in enumerate(out):
        if colour is None:
            if spare:
                out[i] = spare.pop(0)
            else:
                r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.9)
                out[i] = f"{int(r * 255)},{int(g * 255)},{int(b * 255)}"
    return [c for c in out if c is not None]
