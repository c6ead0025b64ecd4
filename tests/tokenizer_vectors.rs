//! The tokenizer against independent references, always loaded from the real GGUF files through `Gguf`:
//!
//! * llama.cpp's test vectors `vocab/ggml-vocab-NAME.gguf` + `.inp` / `.out` (data only). The .inp file holds the
//!   test strings, each followed by the line `__ggml_vocab_test__`; the .out file one line per string with the
//!   expected ids separated by spaces (an empty line for the empty string). llama.cpp's test-tokenizer-0 tokenizes
//!   them with `common_tokenize(ctx, text, add_special = false, parse_special = false)` and asserts only the ids (it
//!   prints the detokenized text without checking it).
//! * `tokenizer_refs.json` (scripts/fixtures/tokenizer_refs.py, `make fixtures`): ids from Google's `sentencepiece`
//!   for Gemma 3 and llama-spm, and from PyPI `tokenizers` configured like SmolLM2's tokenizer.json for SmolLM2.
//! * Round trips in the manner of llama.cpp's test-tokenizer-1-{bpe,spm}: every token's text re-encodes and
//!   decodes back to itself, and so does every Unicode code point; plus decode(encode(s)) == s on the test strings.
mod common;

use pocketlm::gguf::{is_truncated, Gguf};
use pocketlm::tokenizer::{IncrementalDecoder, Tokenizer};
use std::io::Read;

/// Parses only as much of the file as the metadata needs (the tokenizer never touches tensor data).
fn load_gguf(path: &std::path::Path) -> Gguf {
    let mut f = std::fs::File::open(path).unwrap();
    let file_len = f.metadata().unwrap().len();
    let mut buf = Vec::new();
    let mut want = 1u64 << 20;
    loop {
        let take = want.min(file_len) - buf.len() as u64;
        (&mut f).take(take).read_to_end(&mut buf).unwrap();
        match Gguf::parse_header(&buf, file_len) {
            Ok(g) => return g,
            Err(e) if is_truncated(&e) && (buf.len() as u64) < file_len => want *= 4,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

fn load(file: &str) -> Tokenizer {
    Tokenizer::from_gguf(&load_gguf(&common::model_path(file))).unwrap()
}

fn vocab_file(name: &str) -> String {
    format!("vocab/ggml-vocab-{name}.gguf")
}

fn read_vectors(file: &str) -> Vec<(String, Vec<u32>)> {
    let path = common::model_path(file);
    let inp = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
    let out = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
    let mut texts: Vec<String> = inp.split("\n__ggml_vocab_test__\n").map(str::to_owned).collect();
    assert_eq!(texts.pop().as_deref(), Some(""), "{file}.inp must end with the separator line");
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{file}: .inp and .out hold different numbers of tests");
    texts.into_iter().zip(ids).collect()
}

fn check_vectors(name: &str) {
    let file = vocab_file(name);
    let tok = load(&file);
    let vectors = read_vectors(&file);
    assert!(vectors.len() >= 40, "{file}: only {} tests", vectors.len());
    let mut failures = Vec::new();
    for (text, want) in &vectors {
        let got = tok.encode(text, false, false).unwrap();
        if &got != want {
            failures.push(format!("{text:?}\n   want {want:?}\n   got  {got:?}"));
        }
        // Our decode adds no clean-up of spaces, so it must give back the exact input.
        assert_eq!(&tok.decode(&got, false).unwrap(), text, "{file}: decode(encode(s)) != s");
    }
    assert!(failures.is_empty(), "{file}: {} of {} differ:\n{}", failures.len(), vectors.len(), failures.join("\n"));
}

// The five vocabularies the task names, then every other llama.cpp vector set of a supported tokenizer type.
#[test]
fn vectors_gpt2() {
    check_vectors("gpt-2");
}
#[test]
fn vectors_llama_spm() {
    check_vectors("llama-spm");
}
#[test]
fn vectors_llama_bpe() {
    check_vectors("llama-bpe");
}
#[test]
fn vectors_qwen2() {
    check_vectors("qwen2");
}
#[test]
fn vectors_starcoder() {
    check_vectors("starcoder");
}
#[test]
fn vectors_others() {
    for name in ["refact", "mpt", "falcon", "command-r", "deepseek-llm", "deepseek-coder", "qwen35", "phi-3"] {
        check_vectors(name);
    }
}

#[test]
fn unsupported_tokenizers_are_named() {
    // bert-bge is WordPiece ("bert"), gemma-4 is "gemma4": both must be refused with the model name.
    for (name, what) in [("bert-bge", "bert"), ("gemma-4", "gemma4")] {
        let err = Tokenizer::from_gguf(&load_gguf(&common::model_path(&vocab_file(name)))).err().unwrap();
        assert_eq!(err.code(), "unsupported", "{name}: {err}");
        assert!(err.to_string().contains(what), "{name}: {err}");
    }
}

fn check_refs(file: &str) {
    let refs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture_path("tokenizer_refs.json")).unwrap()).unwrap();
    let name = file.rsplit('/').next().unwrap();
    let r = &refs[name];
    let tok = load(file);
    let texts = r["texts"].as_array().unwrap();
    let ids = r["ids"].as_array().unwrap();
    assert!(texts.len() > 100 && texts.len() == ids.len());
    let mut failures = Vec::new();
    for (t, want) in texts.iter().zip(ids) {
        let t = t.as_str().unwrap();
        let want: Vec<u32> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let got = tok.encode(t, false, false).unwrap();
        if got != want {
            failures.push(format!("{t:?}\n   want {want:?}\n   got  {got:?}"));
        }
        // SentencePiece decodes U+2581 as a space by design (llama.cpp's round-trip test skips it too).
        if !t.contains('\u{2581}') {
            assert_eq!(tok.decode(&got, false).unwrap(), t, "{file}: decode(encode(s)) != s");
        }
    }
    assert!(failures.is_empty(), "{file}: {} of {} differ:\n{}", failures.len(), texts.len(), failures.join("\n"));
}

#[test]
fn gemma3_matches_sentencepiece() {
    check_refs(common::GEMMA3);
}
#[test]
fn llama_spm_matches_sentencepiece() {
    check_refs(&vocab_file("llama-spm"));
}
#[test]
fn smollm2_matches_hf_tokenizers() {
    check_refs(common::SMOLLM2);
}

/// test-tokenizer-1's vocabulary round trip: decode([id]) (specials rendered) re-encoded with parse_special and
/// decoded again gives the same text.
fn vocab_round_trip(tok: &Tokenizer, what: &str) {
    let mut bad = Vec::new();
    for id in 0..tok.vocab_size() as u32 {
        let s = tok.decode(&[id], false).unwrap();
        let back = tok.decode(&tok.encode(&s, false, true).unwrap(), false).unwrap();
        if back != s {
            bad.push(format!("{id} {:?}: {s:?} -> {back:?}", tok.token_str(id)));
        }
    }
    assert!(bad.is_empty(), "{what}: {} tokens do not round-trip:\n{}", bad.len(), bad[..bad.len().min(20)].join("\n"));
}

/// test-tokenizer-1's code point round trip (every scalar value except surrogates and the unassigned planes 4-13),
/// sampled with a stride to keep the test short; U+2581 is skipped for SentencePiece vocabularies, whose decoder
/// turns it into a space by design.
fn codepoint_round_trip(tok: &Tokenizer, what: &str, stride: usize) {
    for cp in (0u32..0x110000).step_by(stride) {
        if (0xD800..=0xDFFF).contains(&cp) || (0x40000..=0xE0000).contains(&cp) || cp == 0x2581 {
            continue;
        }
        let s = char::from_u32(cp).unwrap().to_string();
        let ids = tok.encode(&s, false, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), s, "{what}: U+{cp:04X} -> {ids:?}");
    }
}

#[test]
fn round_trips_spm() {
    for file in [vocab_file("llama-spm"), common::GEMMA3.to_string()] {
        let tok = load(&file);
        vocab_round_trip(&tok, &file);
        codepoint_round_trip(&tok, &file, 1);
    }
}

#[test]
fn round_trips_bpe() {
    for file in [vocab_file("gpt-2"), vocab_file("qwen2"), common::SMOLLM2.to_string()] {
        let tok = load(&file);
        vocab_round_trip(&tok, &file);
        codepoint_round_trip(&tok, &file, 7);
    }
}

#[test]
fn smollm2_special_tokens() {
    let tok = load(common::SMOLLM2);
    assert_eq!(tok.vocab_size(), 49152);
    // Ids from the file's metadata (tokenizer.ggml.*_token_id) and SmolLM2's ChatML tokens.
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    assert_eq!(tok.token_str(1), "<|im_start|>");
    assert_eq!(tok.token_str(2), "<|im_end|>");
    assert!(!tok.add_bos(), "the file sets tokenizer.ggml.add_bos_token = false");
    // parse_special turns the control tokens' text into the tokens; without it they are plain text.
    let text = "<|im_start|>user\nHi<|im_end|>\n";
    let ids = tok.encode(text, true, true).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|&&i| i == 1 || i == 2).count(), 2);
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi\n");
    let plain = tok.encode(text, true, false).unwrap();
    assert!(!plain.contains(&1) && !plain.contains(&2));
    assert_eq!(tok.decode(&plain, true).unwrap(), text);
    // End of generation: <|im_end|> (eos) and <|endoftext|> (id 0) end a reply, ordinary tokens do not.
    assert!(tok.is_eog(2) && tok.is_eog(0));
    assert!(!tok.is_eog(1) && !tok.is_eog(ids[1]));
}

#[test]
fn gemma3_special_tokens() {
    let tok = load(common::GEMMA3);
    assert_eq!(tok.vocab_size(), 262144);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(2), Some(1)));
    assert_eq!(tok.token_str(2), "<bos>");
    assert!(tok.add_bos());
    let eot = tok.token_id("<end_of_turn>").unwrap();
    let sot = tok.token_id("<start_of_turn>").unwrap();
    assert!(tok.is_eog(1) && tok.is_eog(eot) && !tok.is_eog(sot) && !tok.is_eog(2));
    let text = "<start_of_turn>user\nHello<end_of_turn>\n";
    let ids = tok.encode(text, true, true).unwrap();
    assert_eq!(&ids[..2], &[2, sot]);
    assert!(ids.contains(&eot));
    assert_eq!(tok.decode(&ids, false).unwrap(), format!("<bos>{text}"));
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHello\n");
}

/// Streams `ids` one by one and checks every piece is whole characters and the pieces add up to `decode`.
fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut dec = IncrementalDecoder::new();
    let mut pieces: Vec<String> = ids.iter().map(|&id| dec.push(tok, id)).collect();
    pieces.push(dec.flush());
    let whole: String = pieces.concat();
    assert_eq!(whole, tok.decode(ids, true).unwrap());
    assert!(!whole.contains('\u{FFFD}'), "{whole:?}");
    pieces
}

#[test]
fn incremental_decoder_holds_partial_characters() {
    // llama-spm spells 🦙 (F0 9F A6 99) with four byte-fallback tokens: nothing may come out before the last one.
    let tok = load(&vocab_file("llama-spm"));
    let ids = tok.encode("Hi 🦙 你好", false, false).unwrap();
    let bytes: Vec<u32> = ["<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"].iter().map(|t| tok.token_id(t).unwrap()).collect();
    let at = ids.windows(4).position(|w| w == bytes.as_slice()).expect("the llama is spelled in bytes");
    let pieces = stream(&tok, &ids);
    assert_eq!(pieces[..at + 3].concat(), "Hi ", "leading space of the sequence dropped, llama held back");
    assert_eq!(pieces[at + 3], "🦙");
    assert_eq!(pieces.concat(), "Hi 🦙 你好");

    // Byte-level BPE: GPT-2 splits CJK and emoji into tokens that each carry part of a character.
    let tok = load(&vocab_file("gpt-2"));
    let text = "emoji 🦙🚀 and 我想在apple工作";
    let ids = tok.encode(text, false, false).unwrap();
    assert!(ids.iter().any(|&id| std::str::from_utf8(tok.token_bytes(id)).is_err()), "some token holds a partial char");
    assert_eq!(stream(&tok, &ids).concat(), text);

    // Gemma 3 byte fallback for a character outside its vocabulary.
    let tok = load(common::GEMMA3);
    let text = "\u{10FFFD}x";
    let ids = tok.encode(text, false, false).unwrap();
    assert_eq!(ids.len(), 5, "four byte tokens and x: {ids:?}");
    assert_eq!(stream(&tok, &ids).concat(), text);
}

#[test]
fn incremental_decoder_edge_cases() {
    let tok = load(&vocab_file("llama-spm"));
    let hello = tok.encode("Hello", false, false).unwrap(); // "▁Hello"
    // From the start of a sequence the space the encoder prepended is dropped, as decode does; a continuation
    // keeps it (the reply continues the prompt text).
    let mut d = IncrementalDecoder::new();
    assert_eq!(d.push(&tok, tok.bos_id().unwrap()), "");
    assert_eq!(d.push(&tok, hello[0]), "Hello");
    let mut d = IncrementalDecoder::continuation();
    assert_eq!(d.push(&tok, hello[0]), " Hello");
    // Control tokens are skipped unless asked for.
    let mut d = IncrementalDecoder::continuation().with_skip_special(false);
    assert_eq!(d.push(&tok, tok.eos_id().unwrap()), "</s>");
    // A stray continuation byte can never become a character: it is replaced, not held forever; an unfinished
    // character is replaced on flush.
    let b = |t: &str| tok.token_id(t).unwrap();
    let mut d = IncrementalDecoder::continuation();
    assert_eq!(d.push(&tok, b("<0x80>")), "\u{FFFD}");
    assert_eq!(d.push(&tok, b("<0xE4>")), "");
    assert_eq!(d.push(&tok, b("<0xBD>")), "");
    assert_eq!(d.flush(), "\u{FFFD}");
    assert_eq!(d.push(&tok, u32::MAX), "", "ids outside the vocabulary add nothing");
    assert!(tok.decode(&[u32::MAX], false).is_err());
}
