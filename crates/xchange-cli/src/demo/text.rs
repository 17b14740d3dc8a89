//! The demo's real work: splitting documents, counting words, word frequencies and a
//! lexicon-based sentiment score, over a small corpus written for the demo.

use std::collections::BTreeMap;

/// Paragraphs the demo assembles documents from (original text written for this project).
pub(crate) const PARAGRAPHS: &[&str] = &[
    "The harbour town woke slowly under a grey sky. Fishermen mended their nets while the gulls argued over scraps, and the baker opened his shutters to a queue that was patient and cheerful despite the cold.",
    "Nobody expected the bridge to fail. The inspection had been careless, the warnings were ignored, and when the river rose in March the old stones gave way with a terrible sound that the whole valley heard.",
    "Our team shipped the release on time. The tests were green, the documentation was clear, and the first users wrote to say the new search was fast, reliable and a pleasure to use.",
    "The meeting dragged on for three hours. Every proposal met an objection, every objection met a sigh, and by the end nobody could remember what problem the committee had been asked to solve.",
    "A small garden can feed a family for most of the summer. Beans climb the fence, tomatoes ripen against the warm wall, and the herbs that grow between the stones make every meal a little brighter.",
    "The storm cut the power to half the city. Traffic lights went dark, trains stopped between stations, and the hospital ran on generators while crews worked through the night to restore the lines.",
    "She learned to play the violin at forty. It was slow and often frustrating, but the day she played a whole sonata without stopping she laughed with joy and called her sister to tell her.",
    "The report found that the old software was fragile and expensive. Outages were frequent, repairs were slow, and the cost of keeping it alive had doubled in five years without any improvement.",
    "Volunteers cleaned the beach on Saturday morning. They collected bottles, nets and plastic bags, shared coffee from a flask, and left the sand cleaner than it had been in years.",
    "The negotiation failed because neither side trusted the other. Offers were withdrawn, deadlines passed, and the workers went on strike while the company lost money every day.",
    "Children in the village school built a weather station from spare parts. They record the wind, the rain and the temperature every morning, and their careful data now helps the local farmers.",
    "The restaurant was loud, the service was rude and the soup was cold. We waited an hour for the main course and left disappointed, hungry and considerably poorer than when we arrived.",
    "A good map makes a stranger feel at home. It shows the paths that are safe, the places worth a visit and the small cafe by the river where the coffee is excellent and the welcome is warm.",
    "The experiment failed twice before it worked. The first sample was contaminated, the second was lost in a freezer fault, but the third gave a clean and convincing result that the whole lab celebrated.",
    "Traffic on the ring road grows worse every year. Drivers are angry, buses are late, and the plan to widen the road will take a decade and destroy the last green field on the edge of town.",
    "The library reopened after a long renovation. Light pours through the new windows, the reading room is quiet and comfortable, and the children's corner is already the happiest place in the building.",
];

/// Document titles.
pub(crate) const TITLES: &[&str] = &[
    "harbour notes",
    "incident review",
    "release letter",
    "minutes",
    "garden diary",
    "city bulletin",
    "field report",
    "weekend log",
];

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "had", "has", "have",
    "her", "his", "in", "is", "it", "its", "of", "on", "or", "that", "the", "their", "them", "then", "there",
    "they", "this", "to", "was", "were", "what", "when", "where", "while", "who", "with", "without", "every",
    "than", "she", "he", "we", "our", "us", "after", "before", "into", "over", "under", "between", "through",
    "any", "whole", "most", "more", "last", "first", "new", "old", "each", "all", "no", "not",
];

const POSITIVE: &[&str] = &[
    "cheerful",
    "patient",
    "green",
    "clear",
    "fast",
    "reliable",
    "pleasure",
    "brighter",
    "warm",
    "joy",
    "laughed",
    "cleaner",
    "careful",
    "helps",
    "safe",
    "excellent",
    "welcome",
    "clean",
    "convincing",
    "celebrated",
    "quiet",
    "comfortable",
    "happiest",
    "good",
    "worth",
    "home",
    "improvement",
    "shared",
    "feed",
    "ripen",
    "light",
];

const NEGATIVE: &[&str] = &[
    "fail",
    "failed",
    "careless",
    "ignored",
    "terrible",
    "dragged",
    "objection",
    "sigh",
    "dark",
    "stopped",
    "frustrating",
    "fragile",
    "expensive",
    "outages",
    "slow",
    "doubled",
    "strike",
    "lost",
    "loud",
    "rude",
    "cold",
    "disappointed",
    "hungry",
    "poorer",
    "contaminated",
    "fault",
    "worse",
    "angry",
    "late",
    "destroy",
    "grey",
    "argued",
    "withdrawn",
];

/// Lower-case words of `text` (letters and apostrophes only).
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
}

/// Paragraphs of a document: blocks separated by blank lines.
pub(crate) fn paragraphs(text: &str) -> Vec<&str> {
    text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// Number of words.
pub(crate) fn word_count(text: &str) -> u64 {
    words(text).count() as u64
}

/// Frequencies of the words that carry meaning (stopwords left out).
pub(crate) fn frequencies(text: &str) -> BTreeMap<String, u64> {
    let mut freq = BTreeMap::new();
    for w in words(text).filter(|w| !STOPWORDS.contains(&w.as_str())) {
        *freq.entry(w).or_insert(0) += 1;
    }
    freq
}

/// The most common word and its count (ties go to the alphabetically first word).
pub(crate) fn most_common(freq: &BTreeMap<String, u64>) -> Option<(String, u64)> {
    freq.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(w, n)| (w.clone(), *n))
}

/// Sentiment from the lexicon: (positive - negative) / (positive + negative), 0 if neither.
pub(crate) fn sentiment(text: &str) -> (f64, u64, u64) {
    let (mut pos, mut neg) = (0u64, 0u64);
    for w in words(text) {
        if POSITIVE.contains(&w.as_str()) {
            pos += 1;
        } else if NEGATIVE.contains(&w.as_str()) {
            neg += 1;
        }
    }
    let score = if pos + neg == 0 { 0.0 } else { (pos as f64 - neg as f64) / (pos + neg) as f64 };
    (score, pos, neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_and_splits_paragraphs() {
        assert_eq!(word_count("The quick brown fox jumps over the lazy dog."), 9);
        assert_eq!(paragraphs("one two\n\n three \n\n\n"), vec!["one two", "three"]);
        assert_eq!(word_count("it's a dog's life"), 4);
    }

    #[test]
    fn frequencies_skip_stopwords_and_find_the_most_common() {
        let f = frequencies("The cat and the hat. The cat sat.");
        assert_eq!(f.get("the"), None);
        assert_eq!(most_common(&f), Some(("cat".into(), 2)));
    }

    #[test]
    fn sentiment_follows_the_lexicon() {
        assert!(sentiment(PARAGRAPHS[2]).0 > 0.5, "the release letter is happy");
        assert!(sentiment(PARAGRAPHS[11]).0 < -0.5, "the restaurant review is not");
        assert_eq!(sentiment("nothing here").0, 0.0);
    }
}
