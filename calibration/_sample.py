"""Built-in sample text (written for edgekit) used when the user gives no data.

Paragraphs of everyday prose of mixed length, so inputs cover short and long sequences.
"""

SAMPLE_PARAGRAPHS = (
    "The city council voted on Tuesday to extend the night bus service to the airport, after a year in which passenger numbers on the late routes doubled.",
    "A small team of engineers spent the winter rebuilding the old water mill, replacing the rotten wheel with oak cut from the same valley.",
    "Shares in the chip maker fell sharply when it warned that demand for laptop processors would stay weak until the second half of next year.",
    "Rain is expected across the north tomorrow, with the heaviest showers in the afternoon and a chance of thunder near the coast.",
    "She learned to play the cello at the age of forty, practising every morning before work, and gave her first concert last spring.",
    "The museum has reopened its natural history wing, where a full skeleton of a blue whale now hangs above the main staircase.",
    "Doctors say that a short walk after dinner helps control blood sugar, and that even ten minutes makes a measurable difference.",
    "The football club confirmed that its captain will miss the rest of the season with a knee injury picked up in training.",
    "Researchers trained a compact language model on a laptop and found it answered simple questions almost as well as a model ten times larger.",
    "Farmers in the region are switching to drought tolerant wheat as summers grow hotter and the spring rains arrive later each year.",
    "The new bridge will carry cyclists and pedestrians across the river, linking two neighbourhoods that have been cut off from each other for decades.",
    "After three days of talks the two companies agreed to share their charging networks, so electric car drivers can use either with one card.",
    "The library lends more than books: residents can borrow tools, board games, sewing machines and even a telescope for a week at a time.",
    "Inflation slowed for the third month in a row, giving the central bank room to hold interest rates steady at its next meeting.",
    "A volunteer crew cleared two tonnes of plastic from the beach over the weekend, most of it fishing net washed in by the winter storms.",
    "The film follows a retired teacher who travels across the country by train to return a letter that was delivered to the wrong address fifty years ago.",
    "Scientists have mapped the nesting sites of sea turtles along the southern shore and asked hotels to dim their lights during the hatching season.",
    "The software update fixes a bug that drained the battery overnight and adds an option to schedule quiet hours for notifications.",
    "Local bakeries report that sales of sourdough have tripled since the lockdown, and several now run weekend classes for beginners.",
    "The orchestra announced a season of free outdoor concerts in the park, starting with a programme of dances by Dvorak and Brahms.",
    "Engineers tested the prototype on a frozen lake, where the sensors had to keep working at thirty degrees below zero for a full week.",
    "The school garden grows enough vegetables to supply the kitchen twice a week, and pupils take turns watering the beds in summer.",
    "Air traffic controllers warned of delays as a line of storms moved across the main flight routes into the capital.",
    "A survey of small businesses found that most plan to hire in the coming year, but many struggle to find workers with the right skills.",
    "The novel, written in short chapters that each cover a single day, follows a family running a hotel on a remote island.",
    "Volunteers counted more than two hundred species of birds in the wetland reserve, including a pair of rare spoonbills.",
    "The hospital opened a new wing for children, with brighter rooms, beds for parents and a playroom on every floor.",
    "Tickets for the festival sold out within an hour, and organisers promised to add a second weekend if the council agrees.",
    "The recipe calls for slow roasted tomatoes, a handful of basil and a splash of good olive oil stirred in at the very end.",
    "Astronomers spotted a comet that will be visible to the naked eye next month, low in the western sky just after sunset.",
    "The startup builds sensors that listen to machines in factories and warn engineers days before a bearing is likely to fail.",
    "Heavy snow closed the mountain pass for the second time this week, and the road will stay shut until the avalanche risk falls.",
)


def sample_texts(n: int | None = None, min_words: int = 0) -> list[str]:
    """The built-in texts. With ``min_words``, neighbouring paragraphs are joined until each
    text has at least that many words (so long sequence lengths are filled with real text)."""
    paragraphs = list(SAMPLE_PARAGRAPHS)
    texts = []
    count = n if n is not None else len(paragraphs)
    for i in range(count):
        words: list[str] = []
        j = i
        while True:
            words.extend(paragraphs[j % len(paragraphs)].split())
            j += 1
            if len(words) >= min_words:
                break
        texts.append(" ".join(words))
    return texts


def greedy_prompts() -> list[str]:
    """The 3 fixed prompts (5, 9 and 13 words of real text) that decoder exports and the decode
    benchmark compare greedy tokens on."""
    return [" ".join(t.split()[:n]) for t, n in zip(sample_texts(3), (5, 9, 13))]
