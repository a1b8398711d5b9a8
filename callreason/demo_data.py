"""Seeded generator of SYNTHETIC demo data for the call-reason pipeline.

Produces a realistic contact-center taxonomy, LLM-style call summaries built
compositionally from phrase banks, an imperfect "LLM labeler" output (labels
with confidences and ~10% label noise) and an unlabeled pool that keeps its
hidden gold labels for benchmarks. Pure numpy/pandas/stdlib.

Regenerate the committed demo files with::

    python -m callreason.demo_data --root .
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_taxonomy", "generate_demo_data", "write_demo_data", "main"]

NOISE_RATE = 0.10  # fraction of labeled rows whose LLM label is wrong
MIN_WORDS, MAX_WORDS = 40, 120
MIN_PER_LEAF = 12  # labeled rows per leaf (by true label) before any filtering
ZIPF_EXPONENT = 0.9

# Where each content slot draws its phrase from (cumulative order below).
# Low leaf share + sibling/cousin borrowing keeps the leaf task non-trivial.
SOURCE_PROBS = {"leaf": 0.42, "l2": 0.26, "sibling": 0.14, "cousin": 0.08, "l1": 0.10}
TOPIC_SOURCE_PROBS = {"leaf": 0.5, "l2": 0.38, "sibling": 0.12}
P_SECONDARY = 0.18  # summary also mentions a topic from another branch

# ---------------------------------------------------------------------------
# Phrase banks. One tuple per node: (topics, details, actions, outcomes), each
# a " | "-separated list. Key "_" holds the vocabulary shared by all children
# of an L1 / L2 node; every other key is a child. Topics are noun phrases
# ("called about ..."), details are clauses ("said that ..."), actions are
# past-tense verb phrases ("the agent ..."), outcomes are clauses.
# ---------------------------------------------------------------------------
_SPEC: dict = {
    "billing_payments": {
        "_": (
            "",
            "the account balance looked higher than usual | they review the bill online every month",
            "pulled up the billing history on the account | reviewed the last few statements",
            "",
        ),
        "billing_charges": {
            "_": (
                "a question about charges on the {month} bill | a billing charge of {amount}",
                "the latest statement showed {amount} more than expected | the charge appeared on the statement dated {date}",
                "walked through the itemized charges line by line | compared the current bill to the previous cycle",
                "the billing team will review the charges within {days} business days | the customer agreed to wait for the next statement to confirm",
            ),
            "unexpected_charge": (
                "an unrecognized fee of {amount} on the bill | a new charge that the customer never agreed to",
                "they did not recognize a one-time fee labeled as a service charge | nobody told them about the extra equipment fee",
                "identified the fee as a one-time equipment charge | explained where the service fee came from",
                "the fee was waived as a one-time courtesy | a credit of {amount} was applied for the unexplained fee",
            ),
            "duplicate_charge": (
                "being charged twice for the same bill | a double charge of {amount}",
                "the same amount was taken from their card twice on {date} | two identical transactions showed up for one bill",
                "confirmed the payment was processed twice | located the duplicate transaction in the payment log",
                "the duplicate payment of {amount} will be reversed within {days} business days | one of the two charges was refunded to the original card",
            ),
        },
        "invoice_questions": {
            "_": (
                "questions about the invoice | the most recent invoice",
                "the invoice format changed recently | they manage the invoices for the household",
                "opened the invoice on file | reviewed the invoice sections with the customer",
                "the customer now understands the invoice | the invoice details were confirmed",
            ),
            "invoice_explanation": (
                "not understanding the prorated amounts on the invoice | confusion over the taxes and surcharges on the invoice",
                "the invoice showed partial-month charges after a plan change | the taxes line was higher than last month",
                "explained how proration works for a mid-cycle change | broke down each tax and regulatory surcharge",
                "the customer was satisfied with the explanation of the prorated charges | a written breakdown of the surcharges was emailed",
            ),
            "invoice_copy_request": (
                "a copy of a past invoice | needing invoices for expense reporting",
                "they need the invoices from {month} for their accountant | the paper invoice never arrived by mail",
                "generated a PDF copy of the requested invoice | showed the customer where to download past invoices in the portal",
                "copies of the last three invoices were emailed | the customer was able to download the invoice while on the call",
            ),
        },
        "payment_methods": {
            "_": (
                "the payment method on file | how payments are made on the account",
                "the card on file ends in {last4} | they prefer to pay by card rather than bank transfer",
                "accessed the payment settings | verified the current payment method",
                "the payment settings were updated | the next payment will use the new settings",
            ),
            "update_payment_card": (
                "updating an expired card | replacing the card on file",
                "their bank issued a new card after the old one expired | the card ending in {last4} is no longer valid",
                "removed the old card and added the new card details | updated the card expiration date and billing zip code",
                "the new card was saved as the default payment method | a test authorization on the new card succeeded",
            ),
            "autopay_setup": (
                "setting up automatic payments | turning on autopay",
                "they keep forgetting to pay on time and want payments to happen automatically | they want autopay to draw on the due date each month",
                "enrolled the account in autopay | set the automatic payment date to the {nth} of the month",
                "autopay will start with the next billing cycle | the customer received a confirmation that autopay is active",
            ),
        },
        "payment_failures": {
            "_": (
                "a payment that did not go through | a problem making a payment of {amount}",
                "they tried to pay {amount} on {date} | the payment portal showed an error",
                "checked the payment attempts on the account | looked up the transaction in the payment system",
                "the account was noted to prevent a service interruption | the customer will retry the payment",
            ),
            "card_declined": (
                "a card being declined when paying the bill | a declined payment",
                "the card was declined twice even though the bank says funds are available | the system rejected the card with a generic decline message",
                "confirmed the decline came from the issuing bank | tried processing the payment manually",
                "the customer will contact their bank about the decline | the payment went through using a different card",
            ),
            "payment_not_posted": (
                "a payment that has not posted to the account | a missing payment",
                "the bank shows the money left their account on {date} but the balance did not change | the payment confirmation number was never applied",
                "traced the payment using the confirmation number | confirmed the payment is still pending with the processor",
                "the payment should post within {days} business days | the payment was manually applied to the balance",
            ),
        },
        "payment_arrangements": {
            "_": (
                "difficulty paying the current balance | financial hardship",
                "the balance due is {amount} | they recently lost hours at work",
                "reviewed the options for past due balances | checked eligibility for a payment arrangement",
                "collections activity was paused | a follow-up reminder was scheduled",
            ),
            "payment_extension": (
                "an extension on the due date | more time to pay the bill",
                "they need until {date} to pay the full amount | they asked to split the past due amount into installments",
                "set up a payment extension until {date} | created an installment plan for the past due amount",
                "service will stay active while the extension is in place | the customer agreed to the installment schedule",
            ),
        },
    },
    "account_profile": {
        "_": (
            "",
            "they have had the account for several years | the account is under their own name",
            "accessed the account profile | confirmed the account details on file",
            "",
        ),
        "login_access": {
            "_": (
                "trouble signing in to the online account | not being able to log in",
                "they have tried logging in on the website and the app | the login page keeps showing an error",
                "checked the login history | verified the username on file",
                "the customer was able to sign in successfully | the customer will try signing in again later",
            ),
            "password_reset": (
                "a forgotten password | resetting the account password",
                "the password reset email never arrived | they forgot the password after changing it last month",
                "sent a new password reset link | triggered a temporary password by text message",
                "the password was reset and the customer logged in | the customer set a new password during the call",
            ),
            "account_locked": (
                "an account that was locked | being locked out of the account",
                "the account locked after too many failed attempts | a message said the account was locked for security reasons",
                "unlocked the account after verification | cleared the failed login counter",
                "the lock was removed and access restored | the account will unlock automatically in {hours} hours",
            ),
        },
        "profile_updates": {
            "_": (
                "updating contact details | changing information on the profile",
                "their details on file are out of date | they recently moved and changed providers",
                "opened the contact information section | confirmed the current contact details",
                "the profile now shows the updated information | a confirmation was sent for the profile change",
            ),
            "change_email": (
                "changing the email address on the account | a new email address",
                "they no longer have access to the old email address | notifications keep going to an old email",
                "updated the email address on the profile | sent a verification link to the new email",
                "the new email address was verified | future notifications will go to the new email",
            ),
            "update_mailing_address": (
                "a change of mailing address | moving to a new address",
                "they are moving to a new home on {date} | mail is still going to the previous address",
                "updated the mailing address on the account | validated the new address against the postal database",
                "statements will be mailed to the new address | the address change takes effect immediately",
            ),
        },
        "account_closure": {
            "_": (
                "closing the account | ending the relationship with the company",
                "they no longer need the service | they are consolidating accounts",
                "reviewed the remaining balance before closure | explained the closure process and the final bill",
                "the account is scheduled to close on {date} | a final statement will be sent",
            ),
            "close_account": (
                "permanently closing their account | shutting down the account",
                "they want the account fully closed | a family member passed away and the account is no longer needed",
                "processed the account closure request | confirmed there were no active services left",
                "the closure confirmation number was provided | the remaining credit of {amount} will be refunded by check",
            ),
        },
        "account_ownership": {
            "_": (
                "who can manage the account | account ownership",
                "the account holder wants another person involved | their spouse helps manage the account",
                "reviewed the account holder permissions | explained the required consent forms",
                "the ownership forms were sent | the change will be effective once the forms are signed",
            ),
            "transfer_ownership": (
                "transferring the account to another person | changing the account holder",
                "they want to move the account into their adult child's name | the account must be transferred after a divorce",
                "started the transfer of ownership request | explained that both parties must verify their identity",
                "the transfer will complete once the new holder accepts | the new account holder will receive a welcome email",
            ),
            "add_authorized_user": (
                "adding an authorized user | giving a family member access",
                "they want their spouse to be able to call about the account | a caregiver needs permission to discuss billing",
                "added the authorized user with limited permissions | set up a verbal passcode for the authorized user",
                "the authorized user can now call on behalf of the account | the permissions can be removed at any time",
            ),
        },
        "communication_preferences": {
            "_": (
                "communication preferences | the messages they receive",
                "they get too many emails and texts | they want to control how the company contacts them",
                "opened the notification preferences | reviewed the communication settings",
                "the preferences were saved | changes can take up to {days} days to apply",
            ),
            "marketing_opt_out": (
                "stopping marketing emails and calls | unsubscribing from promotions",
                "they receive promotional calls several times a week | the unsubscribe link in the emails did not work",
                "removed the customer from marketing lists | added the phone number to the do-not-call list",
                "marketing messages will stop within {days} days | the customer will only receive service-related messages",
            ),
            "paperless_billing": (
                "switching to paperless billing | stopping paper statements",
                "they want bills by email instead of by mail | paper statements are piling up",
                "enrolled the account in paperless billing | updated the statement delivery preference to email",
                "the next statement will be delivered by email | paper statements will stop after this cycle",
            ),
        },
        "privacy_data": {
            "_": (
                "how their personal data is used | privacy concerns",
                "they read about data sharing in the news | they want to know what information is stored",
                "explained the privacy policy | logged a privacy inquiry",
                "the privacy team will respond within {days} days | a case number was provided for the privacy inquiry",
            ),
            "personal_data_request": (
                "a copy of their personal data | deleting their personal data",
                "they want a full export of the information held about them | they asked for their data to be erased",
                "submitted a data access request | submitted a data deletion request on the customer's behalf",
                "the data export will be sent to the verified email | the customer will be notified when the request is completed",
            ),
        },
    },
    "technical_support": {
        "_": (
            "",
            "they already restarted the equipment | the issue started a few days ago",
            "ran remote diagnostics on the line | checked the equipment status remotely",
            "",
        ),
        "connectivity": {
            "_": (
                "internet problems at home | issues with the internet connection",
                "the {device} lights look normal | several devices in the home are affected",
                "checked the signal levels on the modem | reset the connection from the network side",
                "a technician visit was scheduled for {date} | the customer will monitor the connection and call back if needed",
            ),
            "no_internet": (
                "having no internet service at all | a complete loss of internet",
                "the internet has been completely down since {date} | nothing in the home can connect to the internet",
                "found the modem was not registering on the network | reprovisioned the modem",
                "service was restored after the modem was reprovisioned | the customer confirmed they are back online",
            ),
            "slow_speed": (
                "very slow internet speeds | speeds much lower than the plan",
                "speed tests show only {speed} Mbps on a much faster plan | video streams keep buffering in the evening",
                "ran a speed test from the network side | checked for congestion in the area",
                "speeds improved after the line was optimized | the customer was advised to use a wired connection for testing",
            ),
            "intermittent_drops": (
                "the connection dropping on and off | an unstable connection",
                "the internet disconnects several times a day for a few minutes | video calls keep dropping during work",
                "reviewed the connection log for recent drops | found repeated disconnects in the modem log",
                "a line check was ordered to find the source of the drops | the modem firmware was updated to fix the disconnects",
            ),
        },
        "device_setup": {
            "_": (
                "help setting up equipment | installing new equipment",
                "the {device} arrived {days} days ago | they followed the quick start guide but got stuck",
                "walked the customer through the setup steps | confirmed the equipment model",
                "setup was completed while on the call | the customer will finish setup using the online guide",
            ),
            "router_setup": (
                "setting up a new router | configuring the home Wi-Fi network",
                "they want to change the Wi-Fi name and password | the new router is not broadcasting a network",
                "helped configure the Wi-Fi name and password | guided the customer through the router admin page",
                "the Wi-Fi network is working on all devices | the customer connected their devices to the new network",
            ),
            "device_activation": (
                "activating a new device | activating a new {device}",
                "the new device shows an activation error | the device is stuck on the activation screen",
                "activated the device using its serial number | pushed the activation signal to the device",
                "the device activated successfully | the activation will complete within an hour",
            ),
        },
        "app_issues": {
            "_": (
                "problems with the mobile app | the app not working",
                "they are using the latest app version on their phone | the issue happens on both Wi-Fi and mobile data",
                "checked for known app issues | asked the customer to clear the app cache",
                "the customer was advised to reinstall the app | the issue was logged with the app team",
            ),
            "app_crash": (
                "the app crashing on open | the app freezing and closing",
                "the app closes immediately after the splash screen | the app freezes when they open the billing tab",
                "confirmed a known crash bug in the current release | had the customer reinstall the app",
                "the app stopped crashing after the reinstall | a fix is expected in the next app update",
            ),
            "app_login_error": (
                "an error when signing in to the app | the app rejecting the login",
                "the app shows an error code at sign in even though the website works | the app keeps returning to the login screen",
                "reset the app session for the account | checked the app authentication logs",
                "the customer was able to sign in to the app | the login error was escalated to the app team",
            ),
        },
        "service_outage": {
            "_": (
                "a possible service outage | service being down in the neighborhood",
                "neighbors are also without service | the outage started around {time}",
                "checked the outage map for the area | confirmed an open outage ticket for the area",
                "the estimated restoration time was shared | the customer was signed up for outage text updates",
            ),
            "area_outage": (
                "an outage affecting the whole area | a neighborhood outage",
                "the service went down for the entire street after a storm | a construction crew may have cut a cable nearby",
                "linked the account to outage ticket {ticket} | confirmed crews are working on the damaged line",
                "service should be restored by {time} | a service credit will be applied for the outage",
            ),
        },
        "email_service": {
            "_": (
                "problems with the email service | issues with their email account",
                "they use the email account for work | the problem started after a password change",
                "checked the mailbox status | reviewed the email server settings",
                "the email issue was resolved | a ticket was opened with the email team",
            ),
            "email_not_syncing": (
                "email not syncing to the phone | messages not arriving in the mail app",
                "new emails show on the website but not on the phone | the mail app has not updated since {date}",
                "updated the incoming and outgoing server settings | removed and re-added the email account on the phone",
                "emails started syncing again | the mail app now shows new messages",
            ),
        },
        "hardware_faults": {
            "_": (
                "faulty equipment | a broken {device}",
                "the {device} is more than three years old | the equipment makes a clicking noise",
                "ran a hardware diagnostic | confirmed the equipment is covered by the lease agreement",
                "replacement equipment will arrive in {days} business days | the old equipment must be returned with the prepaid label",
            ),
            "equipment_replacement": (
                "replacing a defective {device} | a dead modem",
                "the power light on the {device} does not turn on | the {device} overheats and shuts down",
                "confirmed the {device} failed diagnostics and ordered a replacement | arranged an equipment swap at a local store",
                "a replacement {device} was shipped | the customer can swap the equipment at the store",
            ),
        },
    },
    "orders_delivery": {
        "_": (
            "",
            "the order was placed online | the order number is {order}",
            "looked up order {order} | checked the order history",
            "",
        ),
        "order_status": {
            "_": (
                "the status of an order | an order placed on {date}",
                "the tracking page has not been updated | they need the item by a specific date",
                "checked the tracking information with the carrier | reviewed the shipping status",
                "the customer was given the tracking link | the customer will receive shipping updates by email",
            ),
            "where_is_my_order": (
                "where their order is | tracking a recent order",
                "they have not received a shipping confirmation | the order says processing and they want to know when it will ship",
                "confirmed the order shipped on {date} | provided the tracking number for the shipment",
                "the package is expected to arrive on {date} | the order is on schedule",
            ),
            "order_delayed": (
                "a delayed order | an order that is running late",
                "the delivery date keeps getting pushed back | the order was supposed to arrive {days} days ago",
                "found the shipment held at a carrier facility | confirmed a backorder on one of the items",
                "a shipping fee refund was issued for the delay | the new delivery estimate is {date}",
            ),
        },
        "order_changes": {
            "_": (
                "changing a recent order | a change to order {order}",
                "the order was placed only a few hours ago | the order has not shipped yet",
                "checked whether the order could still be edited | reviewed the items on the order",
                "the order change was confirmed by email | the customer received an updated order confirmation",
            ),
            "modify_order": (
                "changing the size or quantity on an order | adding an item to an existing order",
                "they ordered the wrong size | they want to change the shipping address before it ships",
                "updated the item quantity on the order | changed the shipping address on the order",
                "the modified order will ship on {date} | the price difference of {amount} was charged",
            ),
            "cancel_order": (
                "cancelling an order | stopping an order before it ships",
                "they found the item cheaper elsewhere | they placed the order by mistake",
                "cancelled the order before it was shipped | submitted a cancellation request to the warehouse",
                "the order was cancelled and the payment authorization released | a refund of {amount} will appear in {days} business days",
            ),
        },
        "delivery_problems": {
            "_": (
                "a problem with a delivery | an issue with their package",
                "the carrier marked the package as delivered on {date} | the box was left at the front door",
                "opened a claim with the carrier | reviewed the delivery scan and photo",
                "the claim will be reviewed within {days} business days | a replacement shipment was approved",
            ),
            "missing_package": (
                "a package marked delivered but not received | a missing package",
                "they checked with neighbors and the building office | the delivery photo shows a different door",
                "filed a lost package investigation | confirmed the GPS location of the delivery scan",
                "a replacement was sent at no charge | the customer will be refunded if the package is not found",
            ),
            "damaged_in_transit": (
                "an item that arrived damaged | a broken item in the shipment",
                "the box was crushed and the {item} inside was cracked | the item arrived with broken parts",
                "asked the customer to upload photos of the damage | logged a damage report for the carrier",
                "a replacement {item} will ship within {days} days | the customer will not need to return the damaged item",
            ),
            "wrong_item_received": (
                "receiving the wrong item | an incorrect item in the package",
                "they received a different {item} than the one they ordered | the package contained someone else's order",
                "confirmed the warehouse picked the wrong item | sent a return label for the incorrect item",
                "the correct item will be shipped right away | the customer can keep the wrong item at no charge",
            ),
        },
        "shipping_options": {
            "_": (
                "shipping options | delivery speed",
                "they need the item before a trip | standard shipping takes too long",
                "reviewed the available shipping methods | checked the delivery cutoff times",
                "the shipping method was updated | the customer was told the new delivery date",
            ),
            "expedite_shipping": (
                "upgrading to express shipping | faster delivery for order {order}",
                "they need it delivered by {date} | they asked for overnight delivery",
                "upgraded the order to express shipping for {amount} | requested priority handling at the warehouse",
                "the order will now arrive in two business days | the express shipping fee was waived",
            ),
        },
        "order_placement": {
            "_": (
                "trouble placing an order | a problem with the website checkout",
                "the cart keeps emptying | they tried on both the app and the website",
                "checked the customer's cart | reviewed recent checkout errors",
                "the order was placed successfully | the issue was reported to the web team",
            ),
            "checkout_error": (
                "an error at checkout | checkout failing on the website",
                "the checkout page shows an error after entering payment details | the promo code field causes the checkout to freeze",
                "placed the order for the customer over the phone | cleared the stuck session at checkout",
                "the order was placed by phone and confirmed | the customer completed checkout after the session was cleared",
            ),
        },
    },
    "returns_refunds": {
        "_": (
            "",
            "the item was bought {days} days ago | they still have the original receipt",
            "reviewed the return policy | checked the purchase date",
            "",
        ),
        "return_requests": {
            "_": (
                "returning a purchase | a return for order {order}",
                "the item is unused and in the original packaging | they are still within the return window",
                "confirmed the item is eligible for return | explained the return steps",
                "the return was authorized | the customer will drop off the return at a shipping location",
            ),
            "start_return": (
                "starting a return | returning an item they no longer want",
                "the {item} did not meet their expectations | they changed their mind about the purchase",
                "created a return authorization | emailed a prepaid return label for the {item}",
                "the return authorization number was sent by email | the refund will be issued once the item is received",
            ),
        },
        "refund_status": {
            "_": (
                "the status of a refund | a refund of {amount}",
                "the return was shipped back on {date} | the refund was promised {days} days ago",
                "checked the refund status in the system | confirmed the return was received at the warehouse",
                "the refund timeline was explained | the customer was given a refund reference number",
            ),
            "refund_not_received": (
                "a refund that has not arrived | still waiting for a refund",
                "the bank still shows no refund after two weeks | the refund was issued but never received",
                "confirmed the refund was issued on {date} | provided the refund trace number",
                "the bank should post the refund within {days} business days | the refund was reissued to the original payment method",
            ),
            "refund_amount_dispute": (
                "a refund that was smaller than expected | a partial refund",
                "they were refunded {amount} instead of {amount2} | a restocking fee was deducted from the refund",
                "reviewed how the refund amount was calculated | explained the restocking fee deduction",
                "the remaining {amount} was refunded | the refund amount was confirmed as correct per policy",
            ),
        },
        "exchanges": {
            "_": (
                "an exchange | swapping an item",
                "they want the same item in a different option | they prefer an exchange over a refund",
                "checked stock for the replacement item | created an exchange order",
                "the exchange item will ship once the original is scanned | the exchange was confirmed",
            ),
            "size_exchange": (
                "exchanging for a different size | exchanging for another color",
                "the {item} is too small | they ordered the wrong color",
                "reserved the new size for the exchange | set up an even exchange for the other color",
                "the new size will ship right away | no price difference was charged for the exchange",
            ),
            "defective_item_exchange": (
                "a defective item that needs to be exchanged | a faulty {item}",
                "the {item} stopped working after {days} days | the item does not turn on",
                "confirmed the item is defective | set up an advance exchange for the defective unit",
                "a replacement unit will ship before the defective one is returned | the defective item will be picked up by the carrier",
            ),
        },
        "warranty_claims": {
            "_": (
                "a warranty question | coverage under the warranty",
                "the product is still under the manufacturer warranty | they bought the extended protection plan",
                "checked the warranty status | verified the serial number",
                "the warranty claim number was provided | the customer was told what the warranty covers",
            ),
            "warranty_repair": (
                "a repair under warranty | getting the {item} repaired",
                "the {item} screen cracked without being dropped | the device stopped charging within the warranty period",
                "opened a warranty repair claim | scheduled a repair at an authorized service center",
                "the repair will be covered at no cost | a shipping box will be sent for the repair",
            ),
        },
        "store_credit": {
            "_": (
                "store credit | a gift card",
                "they received store credit for a previous return | they have a gift card from a relative",
                "looked up the store credit balance | checked the gift card number",
                "the balance was confirmed | the customer was told how to apply the credit at checkout",
            ),
            "store_credit_balance": (
                "the balance on their store credit | using store credit on a new order",
                "the store credit of {amount} is not showing at checkout | they are not sure when the credit expires",
                "applied the store credit of {amount} to the order | extended the store credit expiration date",
                "the store credit now appears in the account | the credit was applied to the new purchase",
            ),
        },
    },
    "plans_subscriptions": {
        "_": (
            "",
            "they are on the {plan} plan | the plan renews monthly",
            "reviewed the current plan | compared the available plans",
            "",
        ),
        "plan_changes": {
            "_": (
                "changing their plan | a different plan",
                "their usage has changed recently | the current plan no longer fits",
                "explained the price difference between plans | checked plan eligibility",
                "the plan change takes effect on the next billing cycle | a confirmation email for the plan change was sent",
            ),
            "upgrade_plan": (
                "upgrading to a bigger plan | moving to the {plan} plan with more features",
                "they need more data for working from home | they want faster speeds and more features",
                "upgraded the account to the {plan} plan | applied the upgrade immediately with prorated charges",
                "the new features are available right away | the monthly price will increase by {amount}",
            ),
            "downgrade_plan": (
                "downgrading to a cheaper plan | lowering the monthly cost",
                "they are not using all the features they pay for | money is tight and they want a basic plan",
                "downgraded the account to the {plan} plan | explained which features will be removed",
                "the monthly price will drop by {amount} | the downgrade will apply at the end of the current cycle",
            ),
        },
        "subscription_cancellation": {
            "_": (
                "ending the subscription | stopping the service",
                "they have not used the service in months | they are moving abroad",
                "reviewed the cancellation terms | checked for early termination fees",
                "a cancellation confirmation was emailed | access continues until the end of the paid period",
            ),
            "cancel_subscription": (
                "cancelling the subscription | cancelling the monthly membership",
                "they want to cancel before the next renewal on {date} | they tried to cancel online but could not find the option",
                "processed the subscription cancellation | turned off auto renewal and cancelled the membership",
                "the subscription will end on {date} | no further charges will be made",
            ),
        },
        "renewals": {
            "_": (
                "the subscription renewal | the upcoming renewal",
                "the renewal notice arrived by email | the plan renews on {date}",
                "checked the renewal date | reviewed the renewal terms",
                "the renewal details were explained | the customer will decide before the renewal date",
            ),
            "auto_renewal_query": (
                "being renewed automatically without notice | an automatic renewal charge of {amount}",
                "they did not realize the plan would renew automatically | they were charged for a renewal they did not expect",
                "explained how automatic renewal works | turned off automatic renewal at the customer's request",
                "auto renewal is now off for future terms | a refund for the unwanted renewal was requested",
            ),
            "renewal_price_increase": (
                "a price increase at renewal | a higher price after the promotion ended",
                "the renewal price went up by {amount} | their promotional rate expired",
                "explained the reason for the new price | checked for loyalty pricing",
                "a loyalty discount of {pct} percent was applied | the customer accepted the new price",
            ),
        },
        "add_ons": {
            "_": (
                "add-ons on the plan | optional features",
                "they have several add-ons on the account | an add-on is billed separately each month",
                "reviewed the active add-ons | explained the add-on pricing",
                "the add-on change will show on the next bill | the customer received a summary of the active add-ons",
            ),
            "add_feature": (
                "adding a premium feature | adding an international calling pack",
                "they are traveling abroad next month | they want the premium channel package",
                "added the add-on to the account | activated the new feature package",
                "the new feature is active | the add-on costs {amount} per month",
            ),
        },
        "trials_promotions": {
            "_": (
                "a promotional offer | a trial offer",
                "they signed up through an online promotion | the offer was advertised on the website",
                "checked the promotion terms | verified the offer on the account",
                "the promotion details were confirmed | the customer was told when the offer ends",
            ),
            "free_trial_conversion": (
                "being charged after a free trial | a free trial that turned into a paid plan",
                "they forgot to cancel the free trial | the trial converted to a paid plan on {date}",
                "explained the trial conversion terms | cancelled the paid plan that started after the trial",
                "the first charge of {amount} was refunded | the account was returned to the free tier",
            ),
            "promo_code_issue": (
                "a promo code that did not work | a discount code that was rejected",
                "the code {code} says it is invalid | the discount was not applied to the order",
                "applied the discount manually | confirmed the promo code had expired",
                "the discount of {pct} percent was applied | a new promo code was sent to the customer",
            ),
        },
    },
    "security_fraud": {
        "_": (
            "",
            "they are worried someone has access to the account | they received an unexpected alert",
            "reviewed recent security events on the account | added a security note to the account",
            "",
        ),
        "unauthorized_activity": {
            "_": (
                "suspicious activity on the account | activity they did not authorize",
                "they noticed activity from an unfamiliar location | there was a change they did not make",
                "checked the recent activity log | flagged the account for the fraud team",
                "the fraud team will follow up within {days} days | the account was secured",
            ),
            "unrecognized_transaction": (
                "a transaction they did not make | an unauthorized purchase of {amount}",
                "a purchase of {amount} appeared that they did not make | several small transactions were made overnight",
                "disputed the unauthorized transaction | blocked the merchant from further charges",
                "a provisional credit of {amount} was issued | the disputed transaction is under investigation",
            ),
            "account_takeover": (
                "someone else getting into their account | a hacked account",
                "the password and email were changed without their knowledge | they were logged out and could not get back in",
                "froze the account and reset all credentials | removed the unknown email and devices from the account",
                "the customer regained control of the account | all active sessions were signed out",
            ),
        },
        "identity_verification": {
            "_": (
                "verifying their identity | identity checks",
                "they could not answer the security questions | their documents were rejected",
                "attempted an alternative verification | reviewed the verification requirements",
                "the customer will upload documents to complete verification | verification was completed",
            ),
            "identity_check_failure": (
                "failing the identity check | an identity verification that keeps failing",
                "the online identity check rejected their driver license | the selfie check failed multiple times",
                "verified identity using a one-time code and billing details | escalated the failed verification for manual review",
                "manual review should finish within {days} business days | the customer passed verification over the phone",
            ),
        },
        "phishing_reports": {
            "_": (
                "a suspicious message | a possible scam",
                "the message claimed to be from the company | it asked them to confirm their details",
                "confirmed the message was not from the company | explained how to recognize official messages",
                "the report was forwarded to the security team | the customer was advised not to click any links",
            ),
            "phishing_report": (
                "reporting a phishing email | a scam text asking for payment",
                "they got a text saying their account would be suspended unless they paid {amount} | an email asked them to log in through a strange link",
                "logged the phishing report with the sender details | checked that no changes were made from the link",
                "the customer deleted the message and changed their password | the phishing domain was reported for takedown",
            ),
        },
        "card_security": {
            "_": (
                "the security of their card | their payment card",
                "they always keep the card in their wallet | the card ending in {last4} is linked to the account",
                "checked for recent card use | reviewed the card status",
                "a new card will arrive in {days} business days | the card details were updated",
            ),
            "lost_stolen_card": (
                "a lost card | a stolen wallet",
                "their wallet was stolen on {date} | they cannot find the card after a trip",
                "blocked the card ending in {last4} | ordered a replacement card",
                "the card was cancelled and a replacement ordered | no unauthorized use was found before the block",
            ),
        },
        "two_factor_auth": {
            "_": (
                "two-step verification | verification codes",
                "they use an authenticator app | codes are sent by text message",
                "checked the two-step verification settings | reviewed the registered devices",
                "two-step verification is working again | the customer registered a backup method",
            ),
            "two_factor_reset": (
                "resetting two-step verification | not receiving verification codes",
                "they got a new phone and lost the authenticator app | the text codes never arrive",
                "reset two-step verification after identity checks | removed the old phone from the trusted devices",
                "the customer set up the authenticator on the new phone | backup codes were generated",
            ),
        },
    },
    "sales_retention": {
        "_": (
            "",
            "they compared offers from other providers | they have been a customer for {years} years",
            "reviewed the customer's tenure and history | checked current promotions",
            "",
        ),
        "new_sales": {
            "_": (
                "buying a new service | information before purchasing",
                "they saw an advertisement | a friend recommended the company",
                "explained the available packages | checked availability at the address",
                "a quote was emailed | the customer will think it over",
            ),
            "new_service_inquiry": (
                "signing up for new service | adding a new line",
                "they are moving into a new home and need service | they want to add a second line for a family member",
                "created a new service order | scheduled an installation for {date}",
                "the new service was ordered | installation is confirmed for {date}",
            ),
        },
        "retention_offers": {
            "_": (
                "leaving for another provider | cancelling because of the price",
                "the monthly bill has gone up | they are unhappy with the value for money",
                "reviewed the available retention offers | offered to review the plan options",
                "the customer agreed to stay | the customer will decide by the end of the week",
            ),
            "retention_discount": (
                "a discount to stay | a better deal to keep the service",
                "they will cancel unless they get a lower price | they asked for a loyalty discount",
                "applied a retention discount of {amount} per month for twelve months | offered a free upgrade for six months",
                "the customer accepted the retention offer | the discount will appear on the next bill",
            ),
            "competitor_price_match": (
                "matching a competitor's price | a cheaper offer from a competitor",
                "a competitor offered the same service for {amount} less | they have a written quote from another provider",
                "reviewed the competitor quote | checked whether a price match is allowed",
                "the price was matched for twelve months | a price match was not possible and the customer is considering switching",
            ),
        },
        "complaints_escalation": {
            "_": (
                "a complaint | dissatisfaction with the service",
                "this is the third time they have called about this | they feel nobody has helped them",
                "apologized and documented the complaint | reviewed the previous interactions",
                "a complaint case was opened | a manager will call back within {days} days",
            ),
            "service_complaint": (
                "poor service quality | a bad experience with a previous agent",
                "a previous agent promised a callback that never happened | the technician missed the appointment",
                "logged a formal complaint | issued a goodwill credit of {amount}",
                "the complaint was escalated to customer relations | the customer accepted the apology and credit",
            ),
            "supervisor_request": (
                "speaking with a supervisor | escalating to a manager",
                "they insisted on speaking with a supervisor | they were not satisfied with the agent's answer",
                "transferred the call to a supervisor | scheduled a supervisor callback",
                "the supervisor will call back on {date} | the supervisor took over the call",
            ),
        },
        "loyalty_program": {
            "_": (
                "the rewards program | their rewards membership",
                "they are a gold member of the rewards program | they joined the rewards program last year",
                "looked up the rewards account | explained the rewards tiers",
                "the rewards details were explained | the customer was told how to redeem rewards",
            ),
            "loyalty_points_query": (
                "missing reward points | redeeming loyalty points",
                "the {points} points from a recent purchase are missing | they want to redeem points for a discount",
                "added the missing {points} points | redeemed points for a credit of {amount}",
                "the points balance is now correct | the redeemed credit will show on the next bill",
            ),
        },
        "business_accounts": {
            "_": (
                "a business account | service for their company",
                "they run a small business with {n} employees | the company needs several lines",
                "passed the details to the business sales team | reviewed the business plan options",
                "a business specialist will call back | a business quote was sent",
            ),
            "business_plan_inquiry": (
                "a business plan for their company | moving the company to a business plan",
                "they want to move their employees onto one business account | they need invoices in the company name",
                "prepared a business plan quote | explained volume discounts for business lines",
                "the business quote was emailed for review | the customer will sign the business agreement online",
            ),
        },
    },
}

_KINDS = ("topics", "details", "actions", "outcomes")

# ---------------------------------------------------------------------------
# Generic sentence templates shared by every call.
# ---------------------------------------------------------------------------
_CUSTOMERS = [
    "A residential customer", "A small-business owner", "A long-time customer",
    "A new customer", "An elderly customer", "The account holder",
    "A customer calling on behalf of a parent", "A frustrated customer",
    "A returning caller", "A customer", "A caller", "A customer on a family plan",
]
_OPENERS = [
    "{cust} called about {topic}.", "{cust} contacted support regarding {topic}.",
    "{cust} reached out about {topic}.", "{cust} called in with a question about {topic}.",
    "{cust} called to discuss {topic}.", "{cust} phoned the support line about {topic}.",
]
_OPENERS_NO_CUST = [
    "Reason for call: {topic}.", "Call regarding {topic}.", "Primary issue: {topic}.",
]
_DETAIL_T = [
    "The customer said {x}.", "They explained that {x}.", "According to the caller, {x}.",
    "The customer mentioned that {x}.", "They noted that {x}.", "The caller stated that {x}.",
]
_ACTION_T = [
    "The agent {x}.", "The representative {x}.", "The agent then {x}.",
    "During the call, the agent {x}.", "To resolve this, the agent {x}.", "Agent {x}.",
]
_OUTCOME_T = [
    "{X}.", "As a result, {x}.", "Outcome: {x}.", "By the end of the call, {x}.",
    "Resolution: {x}.", "The agent confirmed that {x}.",
]
_VERIFY = [
    "The agent verified the caller's identity using the account PIN.",
    "Identity was confirmed with the last four digits of the phone number on file.",
    "The representative verified the account holder's name and address before proceeding.",
    "Security verification was completed at the start of the call.",
    "The caller passed the standard security questions.",
]
_HOLD = [
    "The customer was placed on a brief hold while the agent checked the account.",
    "The agent placed the call on hold for about {mins} minutes to research the issue.",
    "After a short hold, the agent returned with an update.",
    "The agent consulted a team lead briefly before continuing.",
]
_CLOSING = [
    "The customer thanked the agent and had no further questions.",
    "The agent confirmed there was nothing else needed and ended the call.",
    "The customer was satisfied with the resolution.",
    "The customer remained somewhat frustrated but accepted the next steps.",
    "The agent provided reference number {ticket} for future contact.",
    "No further action is required from the customer.",
    "The agent recapped the next steps before ending the call.",
    "The call ended politely.",
]
_SECONDARY = [
    "The customer also briefly asked about {topic}, which the agent addressed.",
    "Separately, they mentioned {topic}, but this was not the main reason for the call.",
    "Before ending the call, the customer raised a question about {topic}.",
    "They also brought up {topic} in passing.",
]

_MONTHS = ["January", "February", "March", "April", "May", "June", "July",
           "August", "September", "October", "November", "December"]
_PLANS = ["Basic", "Plus", "Premium", "Unlimited", "Family", "Essentials"]
_DEVICES = ["modem", "router", "set-top box", "gateway", "Wi-Fi extender"]
_ITEMS = ["jacket", "blender", "pair of headphones", "laptop", "coffee maker",
          "phone case", "vacuum cleaner", "smartwatch", "desk lamp", "pair of sneakers"]
_CODES = ["SAVE20", "WELCOME10", "SPRING15", "FREESHIP", "VIP25"]
_TIMES = ["6 PM", "8 PM", "midnight", "noon tomorrow", "10 AM tomorrow"]
_NTH = ["1st", "5th", "10th", "15th", "20th", "28th"]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _split(s: str) -> list[str]:
    return [p.strip() for p in s.split("|") if p.strip()]


def _bank(t: tuple[str, str, str, str]) -> dict[str, list[str]]:
    return {k: _split(v) for k, v in zip(_KINDS, t)}


def make_taxonomy() -> dict[str, dict[str, list[str]]]:
    """Nested {level_1: {level_2: [level_3, ...]}} call-center taxonomy: 8 process areas, ~42 sub-areas, ~64 reasons."""
    return {
        l1: {l2: [l3 for l3 in node2 if l3 != "_"] for l2, node2 in node1.items() if l2 != "_"}
        for l1, node1 in _SPEC.items()
    }


def _build_banks() -> dict:
    """Flatten the spec into leaf paths, sibling/cousin lists and phrase pools."""
    leaves, path, pools = [], {}, {}
    for l1, node1 in _SPEC.items():
        pools[("l1", l1)] = _bank(node1["_"])
        for l2, node2 in node1.items():
            if l2 == "_":
                continue
            pools[("l2", l2)] = _bank(node2["_"])
            for l3, t in node2.items():
                if l3 == "_":
                    continue
                leaves.append(l3)
                path[l3] = (l1, l2)
                pools[("leaf", l3)] = _bank(t)
    siblings = {x: [y for y in leaves if path[y][1] == path[x][1] and y != x] for x in leaves}
    cousins = {x: [y for y in leaves if path[y][0] == path[x][0] and path[y][1] != path[x][1]]
               for x in leaves}
    return {"leaves": leaves, "path": path, "pools": pools,
            "siblings": siblings, "cousins": cousins}


def _fill(text: str, values: dict[str, str], nxt: Callable[[], float]) -> str:
    """Replace {placeholders} with random-but-consistent values for one summary."""

    def pick(seq):
        return seq[int(nxt() * len(seq))]

    def make(name: str) -> str:
        if name == "amount":
            return f"${int(5 + nxt() * 395)}.{int(nxt() * 100):02d}"
        if name == "amount2":
            return f"${int(400 + nxt() * 600)}.{int(nxt() * 100):02d}"
        if name == "date":
            return f"{pick(_MONTHS)} {1 + int(nxt() * 28)}"
        if name == "month":
            return pick(_MONTHS)
        if name == "order":
            return f"#{1_000_000 + int(nxt() * 9_000_000)}"
        if name == "ticket":
            return f"TCK-{100_000 + int(nxt() * 900_000)}"
        if name == "last4":
            return f"{int(nxt() * 10_000):04d}"
        if name in ("days", "mins"):
            return str(2 + int(nxt() * 9))
        if name == "hours":
            return pick(["1", "2", "4", "12", "24"])
        if name == "speed":
            return str(3 + int(nxt() * 40))
        if name == "points":
            return str(50 * (10 + int(nxt() * 90)))
        if name == "pct":
            return pick(["10", "15", "20", "25"])
        if name == "years":
            return str(2 + int(nxt() * 14))
        if name == "n":
            return str(3 + int(nxt() * 40))
        table = {"plan": _PLANS, "device": _DEVICES, "item": _ITEMS, "code": _CODES,
                 "time": _TIMES, "nth": _NTH}
        return pick(table[name])

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name not in values:
            values[name] = make(name)
        return values[name]

    return _PLACEHOLDER.sub(repl, text)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _compose(leaf: str, banks: dict, nxt: Callable[[], float]) -> tuple[str, float, list[str], str | None]:
    """Compose one summary for true leaf `leaf`.

    Returns (text, leaf_fraction, distractor_leaves, secondary_leaf): the share
    of content slots drawn from the leaf's own phrases, the other leaves whose
    phrases were borrowed, and the leaf of an off-branch secondary topic.
    """
    pools, path = banks["pools"], banks["path"]
    l1, l2 = path[leaf]

    def pick(seq):
        return seq[int(nxt() * len(seq))]

    n_leaf, n_slots, distractors, used = 0, 0, [], set()

    def draw_once(kind: str, probs: dict[str, float]) -> tuple[str, str | None]:
        r, acc, src = nxt(), 0.0, "l2"
        for name, p in probs.items():
            acc += p
            if r < acc:
                src = name
                break
        if src in ("sibling", "cousin"):
            group = banks["siblings" if src == "sibling" else "cousins"][leaf]
            if group:
                other = pick(group)
                return pick(pools[("leaf", other)][kind]), other
        if src == "l1" and pools[("l1", l1)][kind]:
            return pick(pools[("l1", l1)][kind]), None
        if src == "leaf":
            return pick(pools[("leaf", leaf)][kind]), leaf
        return pick(pools[("l2", l2)][kind]), None

    def phrase(kind: str, probs: dict[str, float] = SOURCE_PROBS) -> str:
        nonlocal n_leaf, n_slots
        for _ in range(4):  # avoid repeating a phrase within one summary
            text, src_leaf = draw_once(kind, probs)
            if text not in used:
                break
        used.add(text)
        n_slots += 1
        if src_leaf == leaf:
            n_leaf += 1
        elif src_leaf is not None:
            distractors.append(src_leaf)
        return text

    # The opener names the reason: its topic never comes from a cousin branch.
    topic = phrase("topics", TOPIC_SOURCE_PROBS)
    if nxt() < 0.8:
        opener = pick(_OPENERS).format(cust=pick(_CUSTOMERS), topic=topic)
    else:
        opener = pick(_OPENERS_NO_CUST).format(topic=topic)

    details = [pick(_DETAIL_T).format(x=phrase("details")) for _ in range(1 + (nxt() < 0.55))]
    actions = [pick(_ACTION_T).format(x=phrase("actions")) for _ in range(1 + (nxt() < 0.5))]
    o = phrase("outcomes")
    outcome = pick(_OUTCOME_T).format(x=o, X=_cap(o))

    verify = pick(_VERIFY) if nxt() < 0.55 else None
    hold = pick(_HOLD) if nxt() < 0.3 else None
    closing = pick(_CLOSING) if nxt() < 0.75 else None

    secondary_leaf, secondary = None, None
    if nxt() < P_SECONDARY:
        others = [x for x in banks["leaves"] if path[x][0] != l1]
        secondary_leaf = pick(others)
        secondary = pick(_SECONDARY).format(topic=pick(pools[("leaf", secondary_leaf)]["topics"]))

    # Assemble with some variation in sentence order.
    sents = [opener]
    if verify and nxt() < 0.5:
        sents.append(verify)
        verify = None
    sents += details
    if verify:
        sents.append(verify)
    if hold and nxt() < 0.5:
        sents.append(hold)
        hold = None
    sents += actions
    if hold:
        sents.append(hold)
    sents.append(outcome)
    if secondary:
        sents.insert(len(sents) - (nxt() < 0.5), secondary)
    if closing:
        sents.append(closing)

    values: dict[str, str] = {}
    text = " ".join(_cap(_fill(s, values, nxt)) for s in sents)
    return text, n_leaf / n_slots, distractors, secondary_leaf


def _summaries(true_leaves: list[str], banks: dict, rng: np.random.Generator) -> dict[str, list]:
    """Compose one summary per true leaf, resampling until 40-120 words."""
    out: dict[str, list] = {"summary": [], "leaf_frac": [], "distractors": [], "secondary": []}
    for leaf in true_leaves:
        while True:
            nxt = iter(rng.random(256).tolist()).__next__
            text, frac, dis, sec = _compose(leaf, banks, nxt)
            if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                break
        out["summary"].append(text)
        out["leaf_frac"].append(frac)
        out["distractors"].append(dis)
        out["secondary"].append(sec)
    return out


def _leaf_counts(n: int, n_leaves: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-ish per-leaf counts with a floor; also returns the leaf probabilities."""
    ranks = rng.permutation(n_leaves) + 1
    w = ranks.astype(float) ** -ZIPF_EXPONENT
    w /= w.sum()
    floor = min(MIN_PER_LEAF, n // n_leaves)
    counts = floor + rng.multinomial(n - floor * n_leaves, w)
    probs = (floor + (n - floor * n_leaves) * w) / max(n, 1)
    return counts, probs / probs.sum()


def _llm_labels(true_idx: np.ndarray, comp: dict, banks: dict,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulate an imperfect LLM labeler: noisy leaf indices and confidences."""
    leaves = banks["leaves"]
    index = {x: i for i, x in enumerate(leaves)}
    n = len(true_idx)
    has_dis = np.array([len(d) > 0 for d in comp["distractors"]], dtype=float)
    has_sec = np.array([s is not None for s in comp["secondary"]], dtype=float)
    ambiguity = np.clip(1.0 - np.asarray(comp["leaf_frac"]) + 0.4 * has_dis + 0.3 * has_sec, 0, 1.5)

    # Wrong rows: exactly NOISE_RATE of them, preferentially the ambiguous ones.
    n_wrong = int(round(NOISE_RATE * n))
    w = 0.15 + ambiguity
    wrong = np.zeros(n, dtype=bool)
    if n_wrong:
        wrong[rng.choice(n, size=n_wrong, replace=False, p=w / w.sum())] = True

    pred = true_idx.copy()
    for i in np.flatnonzero(wrong):
        leaf = leaves[true_idx[i]]
        r = rng.random()
        sec, dis = comp["secondary"][i], comp["distractors"][i]
        if dis and r < 0.55:
            cands = dis
        elif sec is not None and r < 0.75:
            cands = [sec]
        elif banks["siblings"][leaf] and r < 0.9:
            cands = banks["siblings"][leaf]
        elif banks["cousins"][leaf] and r < 0.97:
            cands = banks["cousins"][leaf]
        else:
            cands = [x for x in leaves if x != leaf]
        pred[i] = index[cands[int(rng.random() * len(cands))]]

    # Confidence: high when right and the text is clear, low-ish when wrong.
    amb = np.minimum(ambiguity, 1.0)
    noise = rng.normal(0.0, 1.0, n)
    conf = np.where(wrong, 0.705 + 0.07 * noise - 0.03 * amb, 0.93 - 0.15 * amb + 0.065 * noise)
    clump = rng.random(n) < 0.5  # LLMs like round numbers: 0.85, 0.9, 0.95
    conf = np.where(clump, np.round(conf * 20) / 20, np.round(conf, 2))
    conf = np.clip(conf, 0.5, 0.99).round(2).astype(np.float64)
    return pred, conf


def _generate(seed: int, n_labeled: int, n_unlabeled: int) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Full generator; the labeled frame also carries gold_level_1/2/3 columns."""
    rng = np.random.default_rng(seed)
    taxonomy = make_taxonomy()
    banks = _build_banks()
    leaves, path = banks["leaves"], banks["path"]

    counts, probs = _leaf_counts(n_labeled, len(leaves), rng)
    lab_idx = rng.permutation(np.repeat(np.arange(len(leaves)), counts))
    unl_idx = rng.choice(len(leaves), size=n_unlabeled, p=probs)

    lab = _summaries([leaves[i] for i in lab_idx], banks, rng)
    unl = _summaries([leaves[i] for i in unl_idx], banks, rng)
    pred_idx, conf = _llm_labels(lab_idx, lab, banks, rng)

    def paths(idx: np.ndarray) -> list[tuple[str, str, str]]:
        return [(*path[leaves[i]], leaves[i]) for i in idx]

    pred_p, gold_p, unl_p = paths(pred_idx), paths(lab_idx), paths(unl_idx)
    labeled = pd.DataFrame({
        "call_id": [f"CALL-{i + 1:06d}" for i in range(n_labeled)],
        "summary": lab["summary"],
        "level_1": [p[0] for p in pred_p],
        "level_2": [p[1] for p in pred_p],
        "level_3": [p[2] for p in pred_p],
        "confidence": conf,
        "gold_level_1": [p[0] for p in gold_p],
        "gold_level_2": [p[1] for p in gold_p],
        "gold_level_3": [p[2] for p in gold_p],
    })
    unlabeled = pd.DataFrame({
        "call_id": [f"UNL-{i + 1:06d}" for i in range(n_unlabeled)],
        "summary": unl["summary"],
        "level_1": [p[0] for p in unl_p],
        "level_2": [p[1] for p in unl_p],
        "level_3": [p[2] for p in unl_p],
    })
    return taxonomy, labeled, unlabeled


def generate_demo_data(seed: int = 0, n_labeled: int = 2400, n_unlabeled: int = 5000,
                       *, return_gold: bool = False) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Returns (taxonomy, labeled, unlabeled).

    labeled columns: call_id (str), summary (str), level_1, level_2, level_3 (str),
    confidence (float64 in [0,1]); the labels are those of a simulated imperfect
    LLM labeler (~10% wrong). With ``return_gold=True`` the labeled frame also has
    the true gold_level_1, gold_level_2, gold_level_3.
    unlabeled columns: call_id, summary, plus the hidden gold level_1, level_2,
    level_3 (true labels, for benchmarks).
    """
    taxonomy, labeled, unlabeled = _generate(seed, n_labeled, n_unlabeled)
    if not return_gold:
        labeled = labeled.drop(columns=["gold_level_1", "gold_level_2", "gold_level_3"])
    return taxonomy, labeled, unlabeled


def write_demo_data(root: Path, seed: int = 0, n_labeled: int = 2400, n_unlabeled: int = 5000) -> None:
    """Writes root/taxonomy/taxonomy.json (indent=2), root/data/phase2_labeled.parquet,
    root/data/unlabeled_summaries.parquet (call_id, summary only) and root/data/demo_unlabeled_gold.parquet
    (call_id, level_1, level_2, level_3) and an empty root/data/relabeled.parquet (no imported LLM answers yet).
    Creates folders. Deterministic: same seed -> byte-identical files."""
    root = Path(root)
    taxonomy, labeled, unlabeled = generate_demo_data(seed=seed, n_labeled=n_labeled, n_unlabeled=n_unlabeled)
    (root / "taxonomy").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "taxonomy" / "taxonomy.json").write_text(json.dumps(taxonomy, indent=2) + "\n", encoding="utf-8")
    labeled.to_parquet(root / "data" / "phase2_labeled.parquet", index=False)
    unlabeled[["call_id", "summary"]].to_parquet(root / "data" / "unlabeled_summaries.parquet", index=False)
    unlabeled[["call_id", "level_1", "level_2", "level_3"]].to_parquet(
        root / "data" / "demo_unlabeled_gold.parquet", index=False)
    from callreason.relabel import empty_relabeled

    empty_relabeled().to_parquet(root / "data" / "relabeled.parquet", index=False)  # no LLM answers imported yet


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m callreason.demo_data --root . --seed 0``."""
    parser = argparse.ArgumentParser(description="Write the synthetic demo data set (seeded).")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root to write into")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    write_demo_data(args.root, seed=args.seed)
    print(f"wrote synthetic demo data (seed={args.seed}) under {args.root.resolve()}")


if __name__ == "__main__":
    main()
