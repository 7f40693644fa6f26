package dev.edgekit.core

import java.io.File
import kotlin.random.Random
import kotlin.system.exitProcess
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * The app core's tests, run on the JVM by tests/android/test_kotlin_core.py:
 *   java -cp core.jar:tests.jar dev.edgekit.core.CoreTestsKt spec.json
 * spec.json names an android artifact's edgekit-app.json, tokenizer.json and golden.json, and real
 * texts with the ids Hugging Face tokenizers gives them. Exit status 1 when any test fails.
 */
fun main(args: Array<String>) {
    val spec = Json.parse(File(args[0]).readText()).obj()
    val app = Json.parse(File(spec["app"] as String).readText()).obj()
    val golden = Json.parse(File(spec["golden"] as String).readText()).obj()["cases"].list().map { it.obj() }
    val tokenizerJson = Json.parse(File(spec["tokenizer"] as String).readText()).obj()
    val tokenizer = WordPieceTokenizer.fromApp(app["tokenizer"].obj(), WordPieceTokenizer.vocabOf(tokenizerJson))
    val maxLength = (spec["max_length"] as Number).toInt()
    val tests = linkedMapOf<String, () -> Unit>(
        "token ids equal Hugging Face tokenizers on real texts" to {
            val texts = spec["texts"].list().map { it.obj() }
            val wrong = texts.filter { !tokenizer.encode(it["text"] as String, maxLength).contentEquals(it["ids"].ints()) }
            assertTrue(texts.size >= 100, "only ${texts.size} texts")
            assertTrue(wrong.isEmpty(), "${wrong.size} of ${texts.size} differ, first: ${wrong.firstOrNull()?.get("text")}")
        },
        "golden texts tokenize to the golden inputs" to {
            for (case in golden) {
                assertContentEquals(case["inputs"].obj()["input_ids"].list()[0].ints(), tokenizer.encode(case["text"] as String, maxLength))
            }
        },
        "pooling the golden hidden states gives the golden embedding" to {
            val pooling = Pooling.fromApp(app["pooling"]?.obj())
            for (case in golden) {
                val hidden = case["outputs"].obj()["last_hidden_state"].list()[0].list().flatMap { it.floats().toList() }.toFloatArray()
                val mask = case["inputs"].obj()["attention_mask"].list()[0].ints()
                val want = case["outputs"].obj()["sentence_embedding"].list()[0].floats()
                val got = pooling.pool(hidden, mask)
                val worst = got.indices.maxOf { kotlin.math.abs(got[it] - want[it]) }
                assertTrue(worst < 1e-4f, "max |diff| $worst")
            }
        },
        "note search ranks a note first for its own text" to {
            val recorded = golden.associate { case ->
                case["inputs"].obj()["input_ids"].list()[0].ints().toList() to
                    case["outputs"].obj()["last_hidden_state"].list()[0].list().flatMap { it.floats().toList() }.toFloatArray()
            }
            val engine = object : EncoderEngine {  // the real model's recorded outputs, replayed
                override fun hiddenStates(inputIds: IntArray, attentionMask: IntArray, tokenTypeIds: IntArray) =
                    recorded.getValue(inputIds.toList())
            }
            val index = NoteIndex(tokenizer, engine, Pooling.fromApp(app["pooling"]?.obj()), maxLength)
            golden.forEach { index.add(it["text"] as String) }
            for (case in golden) assertEquals(case["text"], index.search(case["text"] as String, 1)[0].first)
        },
        "greedy generation follows the logits, stops at EOS and at the program's length" to {
            val engine = ScriptedDecoder(vocab = 6, maxSeqLen = 8) { position -> (position * 2 + 1) % 5 }
            val streamed = ArrayList<Int>()
            val tokens = Generator(engine, eosIds = setOf(5)).generate(intArrayOf(0, 1, 2), 10, onToken = { streamed.add(it) })
            assertContentEquals(intArrayOf(0, 2, 4, 1, 3), tokens)  // 8 positions - 3 prompt tokens
            assertContentEquals(tokens, streamed.toIntArray())
            val eos = ScriptedDecoder(vocab = 6, maxSeqLen = 64) { position -> if (position == 5) 5 else 1 }
            assertContentEquals(intArrayOf(1, 1, 1, 5), Generator(eos, setOf(5)).generate(intArrayOf(0, 1, 2), 10))
        },
        "sampling is seeded and stays in the top-p nucleus" to {
            val logits = floatArrayOf(3f, 2.9f, -5f, -6f)
            val a = (0 until 50).map { Generator.pick(logits, Sampling(1f, 0.9f), Random(7)) }
            val b = (0 until 50).map { Generator.pick(logits, Sampling(1f, 0.9f), Random(7)) }
            assertEquals(a, b)
            val many = Random(1).let { r -> (0 until 500).map { Generator.pick(logits, Sampling(1f, 0.9f), r) }.toSet() }
            assertEquals(setOf(0, 1), many)
        },
        "the JSON reader reads escapes, numbers and nesting" to {
            val v = Json.parse("""{"a": [1, -2.5e1, "x\u00e9\n\"q\""], "b": {"c": null, "d": true}}""").obj()
            assertEquals(listOf(1L, -25.0, "xé\n\"q\""), v["a"])
            assertEquals(mapOf("c" to null, "d" to true), v["b"])
        },
    )
    spec["decoder"]?.let { tests.putAll(decoderTests(it.obj())) }
    var failed = 0
    for ((name, test) in tests) {
        try {
            test()
            println("PASS $name")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: ${e.message}")
        }
    }
    println("${tests.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}

/** A decoder whose logits at each position peak at [next] (position) — for the loop's logic only. */
class ScriptedDecoder(private val vocab: Int, override val maxSeqLen: Int, private val next: (Int) -> Int) : DecoderEngine {
    private var filled = 0

    override fun reset() { filled = 0 }

    private fun logits(position: Int) = FloatArray(vocab) { if (it == next(position)) 1f else 0f }

    override fun prefill(tokens: IntArray): FloatArray { filled = tokens.size; return logits(filled - 1) }

    override fun step(token: Int, position: Int): FloatArray {
        check(position == filled) { "step at $position, the cache holds $filled" }
        filled++
        return logits(position)
    }
}
