"""The demo's catalogues and data classes: species templates (real European BirdNET V2.4
labels, synthetic calls), country latitude boxes, habitat noise profiles, and the sites,
deployments, recordings and species the generator builds."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

CALL_TYPES = ("upsweep", "downsweep", "trill", "harmonic", "warble", "clicks", "chirp", "whistle")
DIEL_PATTERNS = ("dawn", "diurnal", "crepuscular", "nocturnal")
SEASON_PATTERNS = ("resident", "migrant")


@dataclass(frozen=True)
class SpeciesSpec:
    """Hand-written traits of a catalogue species (loosely inspired by the real bird)."""

    label: str  # BirdNET V2.4 label "Scientific name_Common name"
    call_type: str
    diel: str
    season: str
    habitat: str  # preferred habitat or "any"
    range: str  # "north", "south" or "any": where along the gradient its optimum lies


def _spec(
    label: str, call: str, diel: str, season: str, habitat: str, range_: str = "any"
) -> SpeciesSpec:
    return SpeciesSpec(label, call, diel, season, habitat, range_)


#: the species pool; ``demo.n_species`` takes the first n (the first 24 cover every call type,
#: nocturnal/diurnal/crepuscular species, migrants, wetland/farmland/forest and north/south)
SPECIES_CATALOGUE: tuple[SpeciesSpec, ...] = (
    _spec("Turdus merula_Eurasian Blackbird", "warble", "dawn", "resident", "any"),
    _spec("Erithacus rubecula_European Robin", "downsweep", "dawn", "resident", "forest"),
    _spec("Fringilla coelebs_Common Chaffinch", "trill", "dawn", "resident", "forest"),
    _spec("Parus major_Great Tit", "whistle", "dawn", "resident", "forest"),
    _spec("Phylloscopus collybita_Common Chiffchaff", "chirp", "dawn", "migrant", "forest"),
    _spec("Columba palumbus_Common Wood-Pigeon", "harmonic", "diurnal", "resident", "farmland"),
    _spec("Troglodytes troglodytes_Eurasian Wren", "trill", "dawn", "resident", "forest"),
    _spec("Strix aluco_Tawny Owl", "harmonic", "nocturnal", "resident", "forest"),
    _spec("Sylvia atricapilla_Eurasian Blackcap", "warble", "dawn", "migrant", "forest"),
    _spec("Alauda arvensis_Eurasian Skylark", "upsweep", "diurnal", "resident", "farmland"),
    _spec("Acrocephalus scirpaceus_Eurasian Reed Warbler", "chirp", "dawn", "migrant", "wetland"),
    _spec("Cuculus canorus_Common Cuckoo", "whistle", "diurnal", "migrant", "any"),
    _spec("Dendrocopos major_Great Spotted Woodpecker", "clicks", "diurnal", "resident", "forest"),
    _spec("Emberiza schoeniclus_Reed Bunting", "downsweep", "dawn", "resident", "wetland"),
    _spec("Caprimulgus europaeus_Eurasian Nightjar", "clicks", "nocturnal", "migrant", "farmland"),
    _spec("Turdus iliacus_Redwing", "downsweep", "dawn", "migrant", "forest", "north"),
    _spec(
        "Luscinia megarhynchos_Common Nightingale",
        "warble",
        "nocturnal",
        "migrant",
        "forest",
        "south",
    ),
    _spec("Vanellus vanellus_Northern Lapwing", "upsweep", "crepuscular", "resident", "farmland"),
    _spec("Rallus aquaticus_Water Rail", "chirp", "crepuscular", "resident", "wetland"),
    _spec("Upupa epops_Eurasian Hoopoe", "harmonic", "diurnal", "migrant", "farmland", "south"),
    _spec("Fringilla montifringilla_Brambling", "upsweep", "dawn", "migrant", "forest", "north"),
    _spec(
        "Cisticola juncidis_Zitting Cisticola", "clicks", "diurnal", "resident", "farmland", "south"
    ),
    _spec("Regulus regulus_Goldcrest", "trill", "dawn", "resident", "forest", "north"),
    _spec("Athene noctua_Little Owl", "whistle", "nocturnal", "resident", "farmland", "south"),
    # 25-
    _spec("Cyanistes caeruleus_Eurasian Blue Tit", "trill", "dawn", "resident", "forest"),
    _spec(
        "Phylloscopus trochilus_Willow Warbler", "downsweep", "dawn", "migrant", "forest", "north"
    ),
    _spec("Emberiza citrinella_Yellowhammer", "trill", "diurnal", "resident", "farmland"),
    _spec("Hirundo rustica_Barn Swallow", "warble", "diurnal", "migrant", "farmland"),
    _spec("Corvus corone_Carrion Crow", "harmonic", "diurnal", "resident", "any"),
    _spec("Picus viridis_Eurasian Green Woodpecker", "trill", "diurnal", "resident", "forest"),
    _spec("Bubo bubo_Eurasian Eagle-Owl", "harmonic", "nocturnal", "resident", "forest"),
    _spec("Asio otus_Long-eared Owl", "harmonic", "nocturnal", "resident", "forest"),
    _spec("Otus scops_Eurasian Scops-Owl", "whistle", "nocturnal", "migrant", "forest", "south"),
    _spec("Grus grus_Common Crane", "harmonic", "crepuscular", "migrant", "wetland", "north"),
    _spec("Gallinula chloropus_Eurasian Moorhen", "chirp", "crepuscular", "resident", "wetland"),
    _spec("Fulica atra_Eurasian Coot", "chirp", "diurnal", "resident", "wetland"),
    _spec("Anas platyrhynchos_Mallard", "harmonic", "diurnal", "resident", "wetland"),
    _spec("Numenius arquata_Eurasian Curlew", "upsweep", "crepuscular", "migrant", "wetland"),
    _spec("Sitta europaea_Eurasian Nuthatch", "upsweep", "diurnal", "resident", "forest"),
    _spec("Certhia familiaris_Eurasian Treecreeper", "downsweep", "dawn", "resident", "forest"),
    _spec("Turdus philomelos_Song Thrush", "whistle", "dawn", "resident", "forest"),
    _spec("Turdus viscivorus_Mistle Thrush", "warble", "dawn", "resident", "forest"),
    _spec("Prunella modularis_Dunnock", "warble", "dawn", "resident", "any"),
    _spec("Pyrrhula pyrrhula_Eurasian Bullfinch", "whistle", "diurnal", "resident", "forest"),
    _spec("Carduelis carduelis_European Goldfinch", "warble", "diurnal", "resident", "farmland"),
    _spec("Chloris chloris_European Greenfinch", "trill", "diurnal", "resident", "farmland"),
    _spec("Passer domesticus_House Sparrow", "chirp", "diurnal", "resident", "farmland"),
    _spec("Sturnus vulgaris_European Starling", "clicks", "diurnal", "resident", "farmland"),
    _spec(
        "Oriolus oriolus_Eurasian Golden Oriole", "whistle", "dawn", "migrant", "forest", "south"
    ),
    _spec("Merops apiaster_European Bee-eater", "chirp", "diurnal", "migrant", "farmland", "south"),
    _spec("Serinus serinus_European Serin", "trill", "diurnal", "resident", "farmland", "south"),
    _spec(
        "Curruca melanocephala_Sardinian Warbler", "clicks", "dawn", "resident", "farmland", "south"
    ),
    _spec("Cettia cetti_Cetti's Warbler", "chirp", "dawn", "resident", "wetland", "south"),
    _spec("Coturnix coturnix_Common Quail", "whistle", "crepuscular", "migrant", "farmland"),
    _spec("Crex crex_Corn Crake", "clicks", "nocturnal", "migrant", "farmland"),
    _spec("Botaurus stellaris_Great Bittern", "harmonic", "nocturnal", "resident", "wetland"),
    _spec("Tetrao urogallus_Western Capercaillie", "clicks", "dawn", "resident", "forest", "north"),
    _spec(
        "Lagopus lagopus_Willow Ptarmigan", "downsweep", "crepuscular", "resident", "any", "north"
    ),
    _spec("Strix uralensis_Ural Owl", "harmonic", "nocturnal", "resident", "forest", "north"),
    _spec(
        "Glaucidium passerinum_Eurasian Pygmy-Owl",
        "whistle",
        "crepuscular",
        "resident",
        "forest",
        "north",
    ),
    _spec("Aegolius funereus_Boreal Owl", "trill", "nocturnal", "resident", "forest", "north"),
    _spec("Acrocephalus schoenobaenus_Sedge Warbler", "trill", "dawn", "migrant", "wetland"),
    _spec("Phoenicurus phoenicurus_Common Redstart", "downsweep", "dawn", "migrant", "forest"),
    _spec(
        "Ficedula hypoleuca_European Pied Flycatcher",
        "upsweep",
        "dawn",
        "migrant",
        "forest",
        "north",
    ),
)

#: country code -> (northern latitude, southern latitude, longitude) of a box sites are put in
COUNTRY_BOXES: dict[str, tuple[float, float, float]] = {
    "NO": (63.0, 58.6, 10.5),
    "SE": (63.5, 55.8, 15.0),
    "FI": (64.0, 60.5, 25.5),
    "DK": (57.3, 55.0, 9.4),
    "GB": (57.5, 50.6, -2.2),
    "IE": (55.0, 51.8, -8.0),
    "NL": (53.3, 51.5, 5.6),
    "BE": (51.3, 49.8, 4.6),
    "DE": (54.4, 47.9, 10.2),
    "PL": (54.3, 49.6, 19.3),
    "CZ": (50.9, 48.8, 15.4),
    "AT": (48.6, 46.7, 14.2),
    "CH": (47.6, 46.1, 8.1),
    "FR": (50.3, 43.3, 2.4),
    "IT": (46.4, 38.2, 12.5),
    "PT": (41.8, 37.2, -8.2),
    "ES": (43.2, 37.0, -4.0),
    "GR": (41.3, 36.9, 22.6),
}


@dataclass(frozen=True)
class NoiseProfile:
    """Background-noise levels (dBFS RMS) of a habitat."""

    pink_db: float  # broadband floor, everywhere
    wind_db: float  # wind at a calm-to-breezy day (scaled by the day's wind factor)
    wind_cutoff_hz: float  # low-pass cut-off of the wind (canopy rustle is higher)
    insects_db: float  # stridulation on a warm summer night
    rain_prob: float  # chance that a site-day is rainy


HABITAT_NOISE: dict[str, NoiseProfile] = {
    "forest": NoiseProfile(-56.0, -44.0, 900.0, -42.0, 0.25),
    "wetland": NoiseProfile(-56.0, -46.0, 300.0, -34.0, 0.25),
    "farmland": NoiseProfile(-56.0, -36.0, 250.0, -44.0, 0.25),
    "grassland": NoiseProfile(-56.0, -38.0, 300.0, -38.0, 0.25),
    "urban": NoiseProfile(-48.0, -44.0, 400.0, -50.0, 0.25),
}
DEFAULT_NOISE = NoiseProfile(-56.0, -42.0, 400.0, -42.0, 0.25)


@dataclass(frozen=True)
class Site:
    """A recorder site on the latitude gradient (index 0 = northernmost)."""

    index: int
    name: str
    country: str
    habitat: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Deployment:
    """A device at a site during ``[start, end)`` (``end`` None = still deployed)."""

    device_id: str
    site: Site
    config_id: str
    start: dt.datetime
    end: dt.datetime | None


@dataclass(frozen=True)
class Recording:
    """One file to synthesise."""

    rel_path: str
    site: Site
    device_id: str
    start: dt.datetime
    date_index: int
    duration_s: float
    fmt: str  # "mp3" or "flac"


@dataclass(frozen=True)
class Species:
    """A species of the demo community with its ecology and call template."""

    index: int  # position in the selected community (column of the activity matrix)
    spec: SpeciesSpec
    abundance_rank: int  # 1 = most abundant
    weight: float  # share of calls (Zipf), sums to 1 over the community
    lat_optimum: float
    source_db: float  # peak level (dBFS) of a call at 5 m
    bout_length: float  # mean calls per bout
    call_interval_s: float  # mean onset-to-onset time within a bout
    shape: dict[str, float] = field(default_factory=dict)  # call-template parameters

    @property
    def label(self) -> str:
        return self.spec.label
