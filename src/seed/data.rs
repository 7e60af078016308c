//! What the demo and the synthetic sets are made of: classical herbs with
//! their TCM properties, cities, modalities, and a small deterministic
//! generator.

use crate::domain::region::Region;

/// pinyin, scientific name, tastes, temperature, meridians, actions.
type HerbRow = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

pub const CLASSICAL_HERBS: &[HerbRow] = &[
    (
        "Gan Cao",
        "Glycyrrhiza uralensis",
        &["sweet"],
        "neutral",
        &["heart", "lung", "spleen", "stomach"],
        &["tonifies qi", "harmonizes formulas"],
    ),
    (
        "Huang Qi",
        "Astragalus membranaceus",
        &["sweet"],
        "warm",
        &["lung", "spleen"],
        &["tonifies qi", "raises yang"],
    ),
    (
        "Ren Shen",
        "Panax ginseng",
        &["sweet", "bitter"],
        "warm",
        &["lung", "spleen", "heart"],
        &["tonifies yuan qi"],
    ),
    (
        "Dang Gui",
        "Angelica sinensis",
        &["sweet", "pungent"],
        "warm",
        &["heart", "liver", "spleen"],
        &["tonifies blood", "moves blood"],
    ),
    (
        "Bai Shao",
        "Paeonia lactiflora",
        &["bitter", "sour"],
        "cool",
        &["liver", "spleen"],
        &["nourishes blood", "softens the liver"],
    ),
    (
        "Chuan Xiong",
        "Ligusticum chuanxiong",
        &["pungent"],
        "warm",
        &["liver", "gallbladder", "pericardium"],
        &["moves blood", "relieves pain"],
    ),
    (
        "Shu Di Huang",
        "Rehmannia glutinosa (prepared)",
        &["sweet"],
        "warm",
        &["liver", "kidney"],
        &["nourishes blood", "tonifies yin"],
    ),
    (
        "Bai Zhu",
        "Atractylodes macrocephala",
        &["bitter", "sweet"],
        "warm",
        &["spleen", "stomach"],
        &["tonifies the spleen", "dries dampness"],
    ),
    (
        "Fu Ling",
        "Poria cocos",
        &["sweet", "bland"],
        "neutral",
        &["heart", "spleen", "kidney"],
        &["drains dampness", "calms the spirit"],
    ),
    (
        "Huang Qin",
        "Scutellaria baicalensis",
        &["bitter"],
        "cold",
        &["lung", "stomach", "gallbladder", "large intestine"],
        &["clears heat", "dries dampness"],
    ),
    (
        "Huang Lian",
        "Coptis chinensis",
        &["bitter"],
        "cold",
        &["heart", "liver", "stomach", "large intestine"],
        &["clears heat", "dries dampness"],
    ),
    (
        "Huang Bai",
        "Phellodendron chinense",
        &["bitter"],
        "cold",
        &["kidney", "bladder"],
        &["clears damp heat"],
    ),
    (
        "Jin Yin Hua",
        "Lonicera japonica",
        &["sweet"],
        "cold",
        &["lung", "heart", "stomach"],
        &["clears heat", "resolves toxicity"],
    ),
    (
        "Lian Qiao",
        "Forsythia suspensa",
        &["bitter"],
        "cool",
        &["lung", "heart", "small intestine"],
        &["clears heat", "resolves toxicity"],
    ),
    (
        "Ban Lan Gen",
        "Isatis indigotica",
        &["bitter"],
        "cold",
        &["heart", "stomach"],
        &["clears heat", "cools blood"],
    ),
    (
        "Chai Hu",
        "Bupleurum chinense",
        &["bitter", "pungent"],
        "cool",
        &["liver", "gallbladder"],
        &["soothes the liver", "releases the exterior"],
    ),
    (
        "Bo He",
        "Mentha haplocalyx",
        &["pungent"],
        "cool",
        &["lung", "liver"],
        &["releases the exterior", "clears the head"],
    ),
    (
        "Gui Zhi",
        "Cinnamomum cassia (twig)",
        &["pungent", "sweet"],
        "warm",
        &["heart", "lung", "bladder"],
        &["warms the channels", "releases the exterior"],
    ),
    (
        "Ma Huang",
        "Ephedra sinica",
        &["pungent", "bitter"],
        "warm",
        &["lung", "bladder"],
        &["induces sweating", "calms wheezing"],
    ),
    (
        "Sheng Jiang",
        "Zingiber officinale (fresh)",
        &["pungent"],
        "warm",
        &["lung", "spleen", "stomach"],
        &["releases the exterior", "warms the middle"],
    ),
    (
        "Gan Jiang",
        "Zingiber officinale (dried)",
        &["pungent"],
        "hot",
        &["heart", "lung", "spleen", "stomach"],
        &["warms the middle"],
    ),
    (
        "Fu Zi",
        "Aconitum carmichaelii (prepared)",
        &["pungent", "sweet"],
        "hot",
        &["heart", "kidney", "spleen"],
        &["restores yang"],
    ),
    (
        "Rou Gui",
        "Cinnamomum cassia (bark)",
        &["pungent", "sweet"],
        "hot",
        &["heart", "kidney", "liver", "spleen"],
        &["warms yang", "disperses cold"],
    ),
    (
        "Da Huang",
        "Rheum palmatum",
        &["bitter"],
        "cold",
        &["large intestine", "liver", "spleen", "stomach", "heart"],
        &["purges accumulation", "clears heat"],
    ),
    (
        "Shi Gao",
        "Gypsum fibrosum",
        &["pungent", "sweet"],
        "cold",
        &["lung", "stomach"],
        &["clears heat", "drains fire"],
    ),
    (
        "Zhi Mu",
        "Anemarrhena asphodeloides",
        &["bitter", "sweet"],
        "cold",
        &["lung", "stomach", "kidney"],
        &["clears heat", "nourishes yin"],
    ),
    (
        "Mai Men Dong",
        "Ophiopogon japonicus",
        &["sweet", "bitter"],
        "cool",
        &["heart", "lung", "stomach"],
        &["nourishes yin", "moistens the lung"],
    ),
    (
        "Wu Wei Zi",
        "Schisandra chinensis",
        &["sour", "sweet"],
        "warm",
        &["lung", "heart", "kidney"],
        &["astringes", "calms the spirit"],
    ),
    (
        "Shan Zhu Yu",
        "Cornus officinalis",
        &["sour", "astringent"],
        "warm",
        &["liver", "kidney"],
        &["tonifies the liver and kidney", "astringes"],
    ),
    (
        "Suan Zao Ren",
        "Ziziphus jujuba (seed)",
        &["sweet", "sour"],
        "neutral",
        &["heart", "liver", "gallbladder", "spleen"],
        &["calms the spirit", "nourishes the heart"],
    ),
    (
        "Da Zao",
        "Ziziphus jujuba (fruit)",
        &["sweet"],
        "warm",
        &["spleen", "stomach"],
        &["tonifies qi", "nourishes blood"],
    ),
    (
        "Gou Qi Zi",
        "Lycium barbarum",
        &["sweet"],
        "neutral",
        &["liver", "kidney", "lung"],
        &["nourishes the liver and kidney", "brightens the eyes"],
    ),
    (
        "He Shou Wu",
        "Polygonum multiflorum",
        &["bitter", "sweet", "astringent"],
        "warm",
        &["liver", "kidney"],
        &["nourishes blood", "tonifies essence"],
    ),
    (
        "Dan Shen",
        "Salvia miltiorrhiza",
        &["bitter"],
        "cool",
        &["heart", "pericardium", "liver"],
        &["moves blood", "calms the spirit"],
    ),
    (
        "Tao Ren",
        "Prunus persica (seed)",
        &["bitter", "sweet"],
        "neutral",
        &["heart", "liver", "large intestine"],
        &["breaks blood stasis", "moistens the intestines"],
    ),
    (
        "Hong Hua",
        "Carthamus tinctorius",
        &["pungent"],
        "warm",
        &["heart", "liver"],
        &["moves blood", "relieves pain"],
    ),
    (
        "San Qi",
        "Panax notoginseng",
        &["sweet", "bitter"],
        "warm",
        &["liver", "stomach"],
        &["stops bleeding", "moves blood"],
    ),
    (
        "Chen Pi",
        "Citrus reticulata (peel)",
        &["pungent", "bitter"],
        "warm",
        &["lung", "spleen"],
        &["regulates qi", "dries dampness"],
    ),
    (
        "Ban Xia",
        "Pinellia ternata",
        &["pungent"],
        "warm",
        &["lung", "spleen", "stomach"],
        &["transforms phlegm", "descends rebellious qi"],
    ),
    (
        "Xing Ren",
        "Prunus armeniaca (seed)",
        &["bitter"],
        "warm",
        &["lung", "large intestine"],
        &["stops cough", "calms wheezing"],
    ),
    (
        "Jie Geng",
        "Platycodon grandiflorus",
        &["bitter", "pungent"],
        "neutral",
        &["lung"],
        &["opens the lung", "expels phlegm"],
    ),
    (
        "Ge Gen",
        "Pueraria lobata",
        &["sweet", "pungent"],
        "cool",
        &["spleen", "stomach"],
        &["releases the muscles", "generates fluids"],
    ),
    (
        "Ze Xie",
        "Alisma orientale",
        &["sweet", "bland"],
        "cold",
        &["kidney", "bladder"],
        &["drains dampness", "clears heat"],
    ),
    (
        "Yi Yi Ren",
        "Coix lacryma-jobi",
        &["sweet", "bland"],
        "cool",
        &["spleen", "stomach", "lung"],
        &["drains dampness", "strengthens the spleen"],
    ),
    (
        "Shan Yao",
        "Dioscorea opposita",
        &["sweet"],
        "neutral",
        &["spleen", "lung", "kidney"],
        &["tonifies qi", "nourishes yin"],
    ),
    (
        "Du Zhong",
        "Eucommia ulmoides",
        &["sweet"],
        "warm",
        &["liver", "kidney"],
        &["tonifies the liver and kidney", "strengthens the sinews"],
    ),
    (
        "Niu Xi",
        "Achyranthes bidentata",
        &["bitter", "sour"],
        "neutral",
        &["liver", "kidney"],
        &["moves blood", "strengthens the sinews"],
    ),
    (
        "Mu Dan Pi",
        "Paeonia suffruticosa (root bark)",
        &["bitter", "pungent"],
        "cool",
        &["heart", "liver", "kidney"],
        &["clears heat", "cools blood"],
    ),
    (
        "Yan Hu Suo",
        "Corydalis yanhusuo",
        &["pungent", "bitter"],
        "warm",
        &["heart", "liver", "spleen"],
        &["moves blood", "relieves pain"],
    ),
    (
        "Xiang Fu",
        "Cyperus rotundus",
        &["pungent", "bitter", "sweet"],
        "neutral",
        &["liver", "spleen", "triple burner"],
        &["soothes the liver", "regulates qi"],
    ),
    (
        "Long Gu",
        "Fossilia ossis mastodi",
        &["sweet", "astringent"],
        "neutral",
        &["heart", "liver", "kidney"],
        &["calms the spirit", "anchors yang"],
    ),
];

/// Cities for demo and synthetic practitioners: name, region, country, lat, lon.
pub const CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("London", "England", "UK", 51.5074, -0.1278),
    ("Toronto", "Ontario", "Canada", 43.6532, -79.3832),
    (
        "Vancouver",
        "British Columbia",
        "Canada",
        49.2827,
        -123.1207,
    ),
    ("San Francisco", "California", "USA", 37.7749, -122.4194),
    ("New York", "New York", "USA", 40.7128, -74.0060),
    ("Sydney", "New South Wales", "Australia", -33.8688, 151.2093),
    ("Melbourne", "Victoria", "Australia", -37.8136, 144.9631),
    ("Berlin", "Berlin", "Germany", 52.5200, 13.4050),
    ("Paris", "Ile-de-France", "France", 48.8566, 2.3522),
    ("Singapore", "Singapore", "Singapore", 1.3521, 103.8198),
];

/// The ISO 3166-2 code of each city's region.
pub(super) fn region_code(city: &str) -> Option<Region> {
    Region::parse(match city {
        "London" => "GB-LND",
        "Toronto" => "CA-ON",
        "Vancouver" => "CA-BC",
        "San Francisco" => "US-CA",
        "New York" => "US-NY",
        "Sydney" => "AU-NSW",
        "Melbourne" => "AU-VIC",
        "Berlin" => "DE-BE",
        "Paris" => "FR-IDF",
        "Singapore" => "SG",
        _ => return None,
    })
}

pub(super) const MODALITIES: &[&str] = &[
    "acupuncture",
    "herbal medicine",
    "tuina",
    "cupping",
    "moxibustion",
    "qigong",
    "dietary therapy",
];

/// A small deterministic generator (xorshift64*): reproducible data sets
/// without another dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
